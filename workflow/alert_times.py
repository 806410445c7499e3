"""The rules an alert's times obey, whichever way it arrives (the API, a file, generated data)."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["CLOCK_SKEW", "time_problem"]

# The machine that detected an alert may run its clock a little ahead of this one: an alert
# stamped a few minutes from now is taken as "just now", not refused as coming from the future.
CLOCK_SKEW = timedelta(minutes=5)


def time_problem(
    detected_at: datetime, resolved_at: datetime | None, *, now: datetime
) -> tuple[str, str] | None:
    """The field whose time breaks a rule and the broken rule, or None when both make sense.

    Neither time may be later than ``now`` (give or take CLOCK_SKEW), and an alert cannot be
    resolved before it was detected. The times must carry their zone.
    """
    latest = now + CLOCK_SKEW
    if detected_at > latest:
        return "detected_at", f"{detected_at.isoformat()} is in the future"
    if resolved_at is None:
        return None
    if resolved_at > latest:
        return "resolved_at", f"{resolved_at.isoformat()} is in the future"
    if resolved_at < detected_at:
        return "resolved_at", (
            f"{resolved_at.isoformat()} is before detected_at {detected_at.isoformat()}"
        )
    return None
