"""The dashboard's charts, defined once with Altair and drawn from the aggregate query results.

``trends`` (alerts per day stacked by severity), ``top_companies`` (risk score per company) and
``regions`` (alerts per region) each become a Vega-Lite spec with its data inlined; ``render``
turns a spec into PNG or SVG (vl-convert, offline), a standalone HTML page (the Vega bundle
inlined, no external URL) or the JSON spec itself, which a browser draws with vega-embed.

Every spec says in ``usermeta.msd.click`` what a click on a mark selects: for each field of the
clicked datum, the filter parameters it sets. The marks also carry a point selection named
``pick`` on those fields, so a page can listen to that signal instead of its own click handler.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

import altair as alt

from ui.fonts import PNG_FONT, warn_if_undrawable

__all__ = [
    "CHARTS",
    "FORMATS",
    "NO_DATA",
    "SEVERITY_COLORS",
    "ChartContext",
    "build_chart",
    "offline_bundle",
    "render",
]

logger = logging.getLogger(__name__)

# One colour per severity, most severe first; the browser UI uses the same.
SEVERITY_COLORS = {
    "CRITICAL": "#b91c1c",
    "HIGH": "#ea580c",
    "MEDIUM": "#ca8a04",
    "LOW": "#2563eb",
}
NO_DATA = "No alerts for these filters"
FORMATS = ("png", "svg", "html", "json")
PICK = "pick"


@dataclass(frozen=True)
class ChartContext:
    """What the chart is about, for its title: the window and the filters as asked."""

    first_day: date
    last_day: date
    zone: str
    filters: Sequence[tuple[str, Sequence[str]]] = ()
    width: int | None = None
    height: int | None = None


def _subtitle(context: ChartContext) -> list[str]:
    lines = [f"{context.first_day.isoformat()} to {context.last_day.isoformat()} ({context.zone})"]
    shown = [f"{name}: {', '.join(values)}" for name, values in context.filters if values]
    if shown:
        lines.append(" · ".join(shown))
    return lines


def _title(text: str, context: ChartContext) -> alt.TitleParams:
    return alt.TitleParams(text=text, subtitle=_subtitle(context), anchor="start")


def _size(chart: alt.Chart, context: ChartContext, width: int, height: int) -> alt.Chart:
    return chart.properties(width=context.width or width, height=context.height or height)


def _clickable(chart: alt.Chart, name: str, sets: dict[str, list[str]]) -> alt.Chart:
    """The selection ``pick`` on the clicked mark's fields, and what each field filters."""
    pick = alt.selection_point(name=PICK, fields=list(sets), on="click", clear="dblclick")
    return chart.add_params(pick).properties(
        usermeta={"msd": {"chart": name, "click": {"selection": PICK, "sets": sets}}}
    )


def _empty(name: str, title: str, context: ChartContext, width: int, height: int) -> alt.Chart:
    chart = (
        alt.Chart(alt.Data(values=[{"message": NO_DATA}]), title=_title(title, context))
        .mark_text(fontSize=16, color="#555555")
        .encode(text="message:N")
        .properties(usermeta={"msd": {"chart": name, "click": None, "empty": True}})
    )
    return _size(chart, context, width, height)


def _number(value: Decimal | int | float) -> float:
    return float(value)


def trends_chart(rows: Sequence[Any], context: ChartContext) -> alt.Chart:
    """Alerts per day stacked by severity, from ``olap.queries.trends`` rows."""
    title = "Risk trend by severity"
    if not any(row.total_alerts for row in rows):
        return _empty("trends", title, context, 720, 320)
    values = [
        {
            "day": row.date.isoformat(),
            "severity": severity,
            "rank": rank,
            "alerts": getattr(row, f"{severity.lower()}_alerts"),
        }
        for row in rows
        for rank, severity in enumerate(SEVERITY_COLORS)
    ]
    chart = (
        alt.Chart(alt.Data(values=values), title=_title(title, context))
        .mark_bar(cursor="pointer")
        .encode(
            # Days as ordinal ISO dates: no time zone of the browser can move a bar to the
            # day before, as a temporal axis would.
            x=alt.X(
                "day:O",
                title="Day",
                axis=alt.Axis(labelExpr="slice(datum.value, 5)", labelAngle=-45, labelOverlap=True),
            ),
            y=alt.Y("alerts:Q", stack="zero", title="Alerts"),
            color=alt.Color(
                "severity:N",
                scale=alt.Scale(domain=list(SEVERITY_COLORS), range=list(SEVERITY_COLORS.values())),
                legend=alt.Legend(title="Severity"),
            ),
            order=alt.Order("rank:Q"),
            tooltip=[
                alt.Tooltip("day:N", title="Day"),
                alt.Tooltip("severity:N", title="Severity"),
                alt.Tooltip("alerts:Q", title="Alerts"),
            ],
        )
    )
    chart = _clickable(chart, "trends", {"day": ["since", "until"], "severity": ["severity"]})
    return _size(chart, context, 720, 320)


def top_companies_chart(rows: Sequence[Any], context: ChartContext) -> alt.Chart:
    """One bar per company by risk score, from ``olap.queries.top_companies`` rows."""
    title = "Top companies by risk score"
    if not rows:
        return _empty("top_companies", title, context, 640, 360)
    values = [
        {
            "company": row.company_name,
            "risk_score": round(_number(row.risk_score), 4),
            "total_violations": row.total_violations,
            "critical": row.critical,
            "high": row.high,
            "total_amount": _number(row.total_amount),
            "last_violation_date": (
                row.last_violation_date.isoformat() if row.last_violation_date else None
            ),
        }
        for row in rows
    ]
    chart = (
        alt.Chart(alt.Data(values=values), title=_title(title, context))
        .mark_bar(cursor="pointer", color=SEVERITY_COLORS["HIGH"])
        .encode(
            x=alt.X("risk_score:Q", title="Risk score (critical×10 + high×5 + amount/100,000)"),
            y=alt.Y("company:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            tooltip=[
                alt.Tooltip("company:N", title="Company"),
                alt.Tooltip("risk_score:Q", title="Risk score", format=",.2f"),
                alt.Tooltip("total_violations:Q", title="Alerts"),
                alt.Tooltip("critical:Q", title="Critical"),
                alt.Tooltip("high:Q", title="High"),
                alt.Tooltip("total_amount:Q", title="Amount", format="$,.0f"),
                alt.Tooltip("last_violation_date:N", title="Last alert"),
            ],
        )
    )
    chart = _clickable(chart, "top_companies", {"company": ["company"]})
    return _size(chart, context, 640, 360)


def regions_chart(rows: Sequence[Any], context: ChartContext) -> alt.Chart:
    """One bar per region by alerts, from ``olap.queries.regions`` rows."""
    title = "Alerts by region"
    if not rows:
        return _empty("regions", title, context, 720, 320)
    values = [
        {
            "region": row.region,
            "label": row.region or "(none)",
            "alerts": row.alerts,
            "critical": row.critical,
            "high": row.high,
            "pending": row.pending,
            "amount": _number(row.amount),
        }
        for row in rows
    ]
    chart = (
        alt.Chart(alt.Data(values=values), title=_title(title, context))
        .mark_bar(cursor="pointer", color=SEVERITY_COLORS["LOW"])
        .encode(
            x=alt.X("label:N", sort="-y", title="Region", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("alerts:Q", title="Alerts"),
            tooltip=[
                alt.Tooltip("label:N", title="Region"),
                alt.Tooltip("alerts:Q", title="Alerts"),
                alt.Tooltip("critical:Q", title="Critical"),
                alt.Tooltip("high:Q", title="High"),
                alt.Tooltip("pending:Q", title="Pending"),
                alt.Tooltip("amount:Q", title="Amount", format="$,.0f"),
            ],
        )
    )
    chart = _clickable(chart, "regions", {"region": ["region"]})
    return _size(chart, context, 720, 320)


# Chart name -> (the aggregate query it draws, the function drawing it).
CHARTS: dict[str, tuple[str, Callable[[Sequence[Any], ChartContext], alt.Chart]]] = {
    "trends": ("risk_trends", trends_chart),
    "top_companies": ("top_companies", top_companies_chart),
    "regions": ("regions", regions_chart),
}


def build_chart(name: str, rows: Sequence[Any], context: ChartContext) -> dict[str, Any]:
    """The Vega-Lite spec of chart ``name`` over ``rows``, data inlined."""
    _, draw = CHARTS[name]
    return draw(rows, context).to_dict()


# The two URLs in vl-convert's bundle that are neither XML namespaces nor schema ids: the Vega
# Editor link of vega-embed's menu (which would post the chart's data to that site) and an
# issue link in a warning. Both go, so that nothing served points outside this service.
_OFFLINE_EDITS = (
    ('s.editorUrl??"https://vega.github.io/editor/"', 's.editorUrl??""'),
    ("(https://github.com/vega/vega-lite/issues/2415)", "(vega-lite issue 2415)"),
)
_bundle: str | None = None


def offline_bundle() -> str:
    """Vega, Vega-Lite and vega-embed in one script, with no link to an outside site."""
    global _bundle
    if _bundle is None:
        import vl_convert

        text = vl_convert.javascript_bundle()
        for old, new in _OFFLINE_EDITS:
            if text.count(old) != 1:
                raise RuntimeError(
                    f"the vl-convert bundle changed: {old!r} is not there once; review "
                    "ui/charts.py _OFFLINE_EDITS for this vl-convert-python version"
                )
            text = text.replace(old, new)
        _bundle = text
    return _bundle


_EMBED_OPTIONS = {
    "renderer": "svg",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no '</script>' or HTML comment can end the element early."""
    text = json.dumps(value, ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _html_page(spec: dict[str, Any]) -> str:
    title = spec.get("title", {})
    text = title.get("text", "Chart") if isinstance(title, dict) else str(title)
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="UTF-8">\n'
        f"<title>{html.escape(str(text))}</title>\n"
        "<style>body { font-family: sans-serif; margin: 16px; }</style>\n"
        f"<script>{offline_bundle()}</script>\n"
        '</head>\n<body>\n<div id="chart"></div>\n<script>\n'
        f"vegaEmbed('#chart', {_script_json(spec)}, {_script_json(_EMBED_OPTIONS)})"
        ".catch(console.error);\n</script>\n</body>\n</html>\n"
    )


# PNG text is drawn in PNG_FONT, whose digits are wider than a browser's usual sans: tick labels
# that would touch are thinned out.
_PNG_CONFIG = {"font": PNG_FONT, "axis": {"labelSeparation": 4}}


def _texts(value: Any) -> Iterator[str]:
    """Every string in a spec: names, labels and titles among them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def render(spec: dict[str, Any], fmt: str, *, scale: float = 1.0) -> bytes:
    """The spec as PNG, SVG, standalone HTML or JSON bytes."""
    import vl_convert

    if fmt == "png":
        # PNG text is drawn with this machine's fonts, not the viewer's: say which names lose.
        warn_if_undrawable(_texts(spec))
        return vl_convert.vegalite_to_png(spec, scale=scale, config=_PNG_CONFIG)
    if fmt == "svg":
        return vl_convert.vegalite_to_svg(spec).encode("utf-8")
    if fmt == "html":
        return _html_page(spec).encode("utf-8")
    if fmt == "json":
        return json.dumps(spec, ensure_ascii=False).encode("utf-8")
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
