"""The metrics page gives every digit: Unix times and large counts are not rounded."""

from __future__ import annotations

from api.metrics import Metrics


def test_counters_and_gauges_keep_every_digit() -> None:
    metrics = Metrics()
    metrics.count("cache_hits", 12_345_678)
    metrics.add("cache_compute_seconds", 0.125)

    text = metrics.render(
        {
            "reconcile_last_run_timestamp_seconds": (1_796_427_074.0, "When it last ran"),
            "replicated_events": (10_000_001.0, "Change events replicated"),
            "lag_seconds": (12_345_678.5, "A fraction beside a large number"),
        }
    )

    assert "msd_cache_hits_total 12345678\n" in text
    assert "msd_cache_compute_seconds_total 0.125\n" in text
    assert "msd_reconcile_last_run_timestamp_seconds 1796427074\n" in text
    assert "msd_replicated_events 10000001\n" in text
    assert "msd_lag_seconds 12345678.5\n" in text
    assert "msd_cache_misses_total 0\n" in text, "a counter never bumped reads 0"


def test_values_that_are_not_finite_are_spelled_as_prometheus_spells_them() -> None:
    text = Metrics().render(
        {"up": (float("inf"), "Up"), "down": (float("-inf"), "Down"), "odd": (float("nan"), "?")}
    )

    assert "msd_up +Inf\n" in text and "msd_down -Inf\n" in text and "msd_odd NaN\n" in text
