"""The campaign report as ONE self-contained HTML file, plus CSV/JSON twins of every table.

The HTML is mailed around and opened from disk, often offline, so it references nothing outside
itself: CSS is inline, charts are inline SVG generated here (no JS, no web fonts, no images).
Numbers are formatted in Python and the Jinja2 template only lays them out, with autoescaping on
(group names come from customer data) and StrictUndefined (a typo in the template fails loudly).

Stable element ids for browser tests:

* sections: ``headline``, ``charts``, ``breakdowns``, ``root-causes`` (only with root causes),
  ``notes`` (only with notes), ``methods``
* headline values: ``headline-campaign``, ``headline-period``, ``headline-customers``,
  ``headline-rate-treated``, ``headline-rate-holdout``, ``headline-abs-lift``,
  ``headline-abs-lift-ci``, ``headline-rel-lift``, ``headline-incremental-revenue``,
  ``headline-cost``, ``headline-roi``, ``headline-warning`` (only when underpowered),
  ``headline-window`` (only while the attribution window is still open: :func:`window_status`)
* charts: ``<svg class="chart" id="chart-return-rate">`` with ``<rect class="bar" data-arm=...>``
  and ``<g class="error-bar" data-arm=...>``; ``<svg class="chart" id="chart-retention">`` with
  ``<polyline class="curve" data-arm=...>`` and, while the window is open, ``<rect class="unobserved">``
  over the days not observed yet (the x axis spans the whole window, the curves stop where data stop)
* tables: ``table-lift-overall``, ``table-lift-<name>`` per breakdown (name lower-cased, runs of
  other characters turned into '-': ``offer_kind`` → ``table-lift-offer-kind``), ``table-root-causes``;
  every ``<td>`` carries ``data-col`` (the frame column) and, for numbers, ``data-value`` (raw value).
  Lift tables fold columns to fit a 1366 px screen (the CSV/JSON twins keep every column): a cell's
  ``<span class="v">`` shows the value of its ``data-col`` and an optional ``<span class="sub">`` a
  second line: ``rate_treated`` / ``rate_holdout`` the arm size ("of 1,234"), ``abs_lift`` /
  ``rel_lift`` / ``incr_revenue_per_customer`` the interval ("+2.0 to +6.2", money with symbols), and
  ``mde`` "⚠ underpowered" when the row has a warning (that ``<td>`` also gets class ``warn``).
  ``cost`` is offer_cost + message_cost. Breakdown tables state the warnings' reasons once, in a
  ``<span class="table-note">`` in the caption; the overall table leaves that to ``headline-warning``.
  Root-cause columns beyond :data:`ROOT_CAUSE_COLUMNS` are formatted by their name: ``*_cost`` as money,
  ``*_rate`` / ``*_share`` as percentages, anything else as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from babel.numbers import format_currency

from winback.reports.stats import LIFT_COLUMNS, wilson_interval

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
ROOT_CAUSE_COLUMNS: list[str] = [
    "failure_category",
    "volume",
    "recovery_rate",
    "repeat_failure_rate",
]
"""Required root-cause columns; the report adds ``offer_cost`` (measured) and ``resolved_share``."""
ARM_LABELS: dict[str, str] = {"treatment": "Treated", "holdout": "Holdout"}
DASH = "—"
Formatter = Callable[[Any], str]


@dataclass
class ReportData:
    """Everything the report shows; the frames come from :mod:`reports.stats` / :mod:`reports.retention`.

    ``overall`` is a one-row :func:`~reports.stats.lift_table` frame (``by=None``); ``breakdowns``
    maps a name ('segment', 'channel', 'offer_kind', 'failure_category', ...) to a ``lift_table``
    frame grouped by that dimension; ``retention`` is :func:`~reports.retention.retention_curve`
    output; ``root_causes`` has :data:`ROOT_CAUSE_COLUMNS` (further columns are formatted by name).
    ``confidence`` must match the level the frames were computed with; it labels the intervals and
    sets the error bars of the return-rate chart.

    ``window_days`` is the attribution window the returns were tracked over and ``observed_days`` how
    much of it (in days, fractional) had passed when they were last tracked; while ``observed_days <
    window_days`` every number is partial (only the quick returners so far), and the report says so at
    the top. ``period_end`` is then the day of the last tracking, not the end of the window, and
    ``retention`` should run to ``ceil(observed_days)`` so that its last point holds every return counted.
    """

    title: str
    campaign_id: str
    generated_at: datetime
    overall: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    retention: pd.DataFrame
    root_causes: pd.DataFrame | None = None
    delivery: pd.DataFrame | None = None  # per channel: message outcomes and provider events (counts)
    notes: list[str] = field(default_factory=list)
    period_start: date | None = None
    period_end: date | None = None
    currency: str = "EUR"
    locale: str = "en_US"
    confidence: float = 0.95
    window_days: int | None = None
    observed_days: float | None = None


def window_status(report: ReportData) -> str | None:
    """The "Window open: 7 of 30 days observed" banner, while the attribution window is still filling.

    A run reported a week into a 30-day window counts only the customers who came back that week: rates
    and revenue are lower than they will be and the lift can still move either way, which an analyst
    must see before any number.
    None once the window has been observed in full, or when the report does not say (hand-built data).
    """
    if report.window_days is None or report.observed_days is None or report.observed_days >= report.window_days:
        return None
    return (
        f"Window open: {fmt_days(report.observed_days)} of {report.window_days} days observed. Return rates, "
        f"lift and revenue count only the returns so far and will change until day {report.window_days}."
    )


def fmt_days(days: float) -> str:
    """Days observed, rounded down to a tenth: 29.96 days is not yet "30 of 30"; whole days show no ".0"."""
    return f"{math.floor(days * 10 + 1e-9) / 10:g}"


# --------------------------------------------------------------------------------------------------
# Number formatting. The formats are part of the contract with the tests:
#   rates "15.2%", lifts "+4.1 pp", relative lift / ROI "+27.0%", money "€1,234.50", counts "1,234".


def _missing(x: Any) -> bool:
    try:
        return x is None or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt_pct(x: Any, *, signed: bool = False) -> str:
    if _missing(x):
        return DASH
    if math.isinf(x):
        return "∞"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def fmt_pp(x: Any, *, signed: bool = True) -> str:
    if _missing(x):
        return DASH
    if math.isinf(x):
        return "not detectable"
    return f"{x * 100:+.1f} pp" if signed else f"{x * 100:.1f} pp"


def fmt_int(x: Any) -> str:
    return DASH if _missing(x) else f"{int(x):,}"


def fmt_range(low: Any, high: Any, fmt: Formatter) -> str:
    if _missing(low) or _missing(high):
        return DASH
    return f"{fmt(low)} to {fmt(high)}"


def _slug(name: str, sep: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", sep, str(name).lower()).strip(sep)
    if not slug:
        raise ValueError(f"breakdown name {name!r} has no letters or digits")
    return slug


# --------------------------------------------------------------------------------------------------
# Table view models


@dataclass(frozen=True)
class Cell:
    text: str
    col: str
    value: str | None = None  # raw number for data-value
    sub: str | None = None  # small second line: an interval, a group size or a flag
    sub_css: str = "ci"
    css: str = ""


@dataclass(frozen=True)
class Header:
    text: str  # "\n" marks a line break: short lines keep the columns' natural widths narrow
    css: str = ""


@dataclass(frozen=True)
class TableView:
    id: str
    caption: str
    headers: list[Header]
    rows: list[list[Cell]]
    note: str | None = None  # shown once under the caption (the lift tables' power warning)


def _raw(x: Any) -> str | None:
    if _missing(x) or isinstance(x, str | bool):
        return None
    try:
        return repr(float(x))
    except (TypeError, ValueError):
        return None


def _text(x: Any) -> str:
    return "(missing)" if _missing(x) else str(x)


def _signed(x: Any) -> str:
    """An interval bound in a lift table: the unit is on the value line above it."""
    return "∞" if math.isinf(x) else f"{x * 100:+.1f}"


# The per-row warnings of reports.stats.proportion_lift differ only in their numbers (MDE, arm sizes),
# which the table shows per row; the note above the table states each reason once without them.
_REASON_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"^(the minimum detectable lift at \S+ power) is .+?, (above the .+ that matters)$"),
        r"\1 (MDE) is \2",
    ),
    (re.compile(r"^(fewer than \d+ customers in an arm) \(.*\)$"), r"\1"),
    (re.compile(r"^(no \w+ customers) in this group(, so no comparison is possible)$"), r"\1\2"),
]


def _power_note(warnings: list[Any]) -> str | None:
    flagged = [str(w) for w in warnings if not _missing(w)]
    if not flagged:
        return None
    reasons: list[str] = []
    for warning in flagged:
        for problem in warning.removeprefix("Underpowered: ").rstrip(".").split("; "):
            for pattern, repl in _REASON_PATTERNS:
                problem = pattern.sub(repl, problem)
            if problem not in reasons:
                reasons.append(problem)
    groups = "group" if len(warnings) == 1 else "groups"
    return (
        f"⚠ Underpowered in {len(flagged)} of {len(warnings)} {groups} (flagged in the MDE column): "
        f"{'; '.join(reasons)}."
    )


def _lift_table_view(
    frame: pd.DataFrame, table_id: str, caption: str, money: Formatter, conf: str, *, note: bool = True
) -> TableView:
    """One row per group; estimates carry their interval on a second line, each arm's rate its size.

    Offer and message cost are shown summed (``data-col="cost"``); the per-row power warning is a
    "⚠ underpowered" flag under the MDE, and (``note``) its reasons are stated once above the table.
    """
    missing = [c for c in LIFT_COLUMNS if c not in frame.columns and c not in ("roi_basis", "underpowered")]
    if missing:
        raise ValueError(f"{caption}: missing column(s) {', '.join(map(repr, missing))}")
    group_cols = [c for c in frame.columns if c not in LIFT_COLUMNS]
    headers = [
        *(Header(c.replace("_", " ").capitalize()) for c in group_cols),
        *(
            Header(text, "num")
            for text in (
                "Return rate\ntreated",
                "Return rate\nholdout",
                f"Abs. lift\n({conf} CI)",
                f"Rel. lift\n({conf} CI)",
                f"Incr. revenue per\ncustomer ({conf} CI)",
                "Incremental\nrevenue",
                "Cost",
                "ROI",
                "MDE",
            )
        ),
    ]
    rows: list[list[Cell]] = []
    for rec in frame.to_dict("records"):
        row = [Cell(_text(rec[c]), c, css="group") for c in group_cols]
        flagged = not _missing(rec.get("warning"))
        cost = rec["offer_cost"] + rec["message_cost"]
        row += [
            Cell(
                fmt_pct(rec["rate_treated"]),
                "rate_treated",
                _raw(rec["rate_treated"]),
                sub=f"of {fmt_int(rec['n_treated'])}",
                sub_css="n",
                css="num",
            ),
            Cell(
                fmt_pct(rec["rate_holdout"]),
                "rate_holdout",
                _raw(rec["rate_holdout"]),
                sub=f"of {fmt_int(rec['n_holdout'])}",
                sub_css="n",
                css="num",
            ),
            Cell(
                fmt_pp(rec["abs_lift"]),
                "abs_lift",
                _raw(rec["abs_lift"]),
                sub=fmt_range(rec["abs_lift_low"], rec["abs_lift_high"], _signed),
                css="num",
            ),
            Cell(
                fmt_pct(rec["rel_lift"], signed=True),
                "rel_lift",
                _raw(rec["rel_lift"]),
                sub=fmt_range(rec["rel_lift_low"], rec["rel_lift_high"], _signed),
                css="num",
            ),
            Cell(
                money(rec["incr_revenue_per_customer"]),
                "incr_revenue_per_customer",
                _raw(rec["incr_revenue_per_customer"]),
                sub=fmt_range(rec["incr_revenue_per_customer_low"], rec["incr_revenue_per_customer_high"], money),
                css="num",
            ),
            Cell(
                money(rec["incremental_revenue"]),
                "incremental_revenue",
                _raw(rec["incremental_revenue"]),
                css="num",
            ),
            Cell(money(cost), "cost", _raw(cost), css="num"),
            Cell(fmt_pct(rec["roi"], signed=True), "roi", _raw(rec["roi"]), css="num"),
            Cell(
                fmt_pp(rec["mde"], signed=False),
                "mde",
                _raw(rec["mde"]),
                sub="⚠ underpowered" if flagged else None,
                sub_css="flag",
                css="num warn" if flagged else "num",
            ),
        ]
        rows.append(row)
    power_note = _power_note(frame["warning"].tolist()) if note else None
    return TableView(table_id, caption, headers, rows, power_note)


def _named_cell(rec: dict[str, Any], col: str, money: Formatter) -> Cell:
    """A further root-cause column, formatted by what its name says it holds."""
    value = rec[col]
    if col.endswith("_cost"):
        return Cell(money(value), col, _raw(value), css="num")
    if col.endswith(("_rate", "_share")):
        return Cell(fmt_pct(value), col, _raw(value), css="num")
    return Cell(_text(value), col)


def _named_header(col: str) -> Header:
    numeric = col.endswith(("_cost", "_rate", "_share"))
    return Header(col.replace("_", " ").capitalize(), "num" if numeric else "")


def _root_cause_view(frame: pd.DataFrame, money: Formatter) -> TableView:
    missing = [c for c in ROOT_CAUSE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"root_causes: missing column(s) {', '.join(map(repr, missing))}")
    extra = [c for c in frame.columns if c not in ROOT_CAUSE_COLUMNS]
    headers = [
        Header("Failure category"),
        Header("Volume", "num"),
        Header("Recovery rate", "num"),
        Header("Repeat-failure rate", "num"),
        *(_named_header(c) for c in extra),
    ]
    rows = [
        [
            Cell(_text(rec["failure_category"]), "failure_category", css="group"),
            Cell(fmt_int(rec["volume"]), "volume", _raw(rec["volume"]), css="num"),
            Cell(fmt_pct(rec["recovery_rate"]), "recovery_rate", _raw(rec["recovery_rate"]), css="num"),
            Cell(
                fmt_pct(rec["repeat_failure_rate"]),
                "repeat_failure_rate",
                _raw(rec["repeat_failure_rate"]),
                css="num",
            ),
            *(_named_cell(rec, c, money) for c in extra),
        ]
        for rec in frame.to_dict("records")
    ]
    return TableView("table-root-causes", "Root causes by failure category", headers, rows)


def _delivery_view(frame: pd.DataFrame) -> TableView:
    """Counts per channel: what was sent and what providers then reported (delivered, opened, ...)."""
    headers = [Header("Channel"), *(Header(c.replace("_", " ").capitalize(), "num") for c in frame.columns[1:])]
    rows = [
        [
            Cell(_text(rec[frame.columns[0]]), frame.columns[0], css="group"),
            *(Cell(fmt_int(rec[c]), c, _raw(rec[c]), css="num") for c in frame.columns[1:]),
        ]
        for rec in frame.to_dict("records")
    ]
    return TableView("table-delivery", "Messages and provider events by channel", headers, rows)


# --------------------------------------------------------------------------------------------------
# SVG chart geometry (the template draws it)


def _nice_max(value: float) -> tuple[float, float]:
    """An axis maximum ≥ value on a 1/2/2.5/5 × 10^k grid and its tick step (about 4-5 ticks)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0, 0.25
    raw_step = value / 4.0
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw_step)
    return step * math.ceil(value / step - 1e-9), step


@dataclass(frozen=True)
class Plot:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top


def _y_ticks(plot: Plot, ymax: float, step: float) -> list[dict[str, Any]]:
    n = round(ymax / step)
    return [
        {"y": round(plot.y0 - (plot.y0 - plot.y1) * (i * step) / ymax, 2), "label": fmt_pct(i * step)}
        for i in range(n + 1)
    ]


def _return_rate_chart(overall: dict[str, Any], confidence: float) -> dict[str, Any]:
    plot = Plot(width=420, height=320, left=56, right=16, top=24, bottom=48)
    arms = []
    for arm, suffix in (("treatment", "treated"), ("holdout", "holdout")):
        rate, n = float(overall[f"rate_{suffix}"]), int(overall[f"n_{suffix}"])
        # Wilson interval of the arm's own rate; rate * n recovers the count of returners.
        low, high = wilson_interval(rate * n, n, confidence=confidence) if n else (np.nan, np.nan)
        arms.append(
            {
                "arm": arm,
                "label": ARM_LABELS[arm],
                "rate": rate,
                "n": n,
                "low": float(low),
                "high": float(high),
            }
        )
    candidates = [v for a in arms for v in (a["rate"], a["high"]) if math.isfinite(v)]
    top_value = max([*candidates, 0.0])
    ymax, step = _nice_max(top_value)
    span = plot.y0 - plot.y1
    slot = (plot.x1 - plot.x0) / len(arms)
    bar_w = slot * 0.5

    def y(v: float) -> float:
        return round(plot.y0 - span * v / ymax, 2)

    bars = []
    for i, a in enumerate(arms):
        cx = plot.x0 + slot * (i + 0.5)
        rate = a["rate"] if math.isfinite(a["rate"]) else 0.0
        has_ci = math.isfinite(a["low"]) and math.isfinite(a["high"])
        bars.append(
            {
                **a,
                "x": round(cx - bar_w / 2, 2),
                "cx": round(cx, 2),
                "width": round(bar_w, 2),
                "y": y(rate),
                "height": round(plot.y0 - y(rate), 2),
                "has_ci": has_ci,
                "y_low": y(a["low"]) if has_ci else 0,
                "y_high": y(a["high"]) if has_ci else 0,
                "cap": round(bar_w / 4, 2),
                "rate_text": fmt_pct(a["rate"]),
                "ci_text": fmt_range(a["low"], a["high"], fmt_pct),
            }
        )
    return {"plot": plot, "bars": bars, "yticks": _y_ticks(plot, ymax, step)}


def _retention_chart(
    retention: pd.DataFrame, window_days: int | None = None, observed_days: float | None = None
) -> dict[str, Any]:
    """Curves up to the last tracking, on an axis spanning the whole window when it is longer.

    While the window is open the days not yet observed are shaded, so the curves visibly stop for lack
    of data rather than running flat to the end as if nobody came back after the last tracking.
    """
    missing = [c for c in ("arm", "day", "share") if c not in retention.columns]
    if missing:
        raise ValueError(f"retention: missing column(s) {', '.join(map(repr, missing))}")
    plot = Plot(width=640, height=320, left=56, right=110, top=24, bottom=48)
    max_day = max(float(retention["day"].max()) if len(retention) else 0.0, float(window_days or 0), 1.0)
    ymax, step = _nice_max(float(retention["share"].max()) if len(retention) else 0.0)
    span_x, span_y = plot.x1 - plot.x0, plot.y0 - plot.y1
    curves = []
    for arm in ("treatment", "holdout"):
        part = retention[retention["arm"] == arm].sort_values("day")
        if part.empty:
            continue
        xs = plot.x0 + span_x * part["day"].to_numpy(dtype=float) / max_day
        ys = plot.y0 - span_y * part["share"].to_numpy(dtype=float) / ymax
        points = " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))
        last = part.iloc[-1]
        curves.append(
            {
                "arm": arm,
                "label": ARM_LABELS[arm],
                "points": points,
                "end_x": round(float(xs[-1]) + 6, 2),
                "end_y": round(float(ys[-1]) + 4, 2),
                "end_text": f"{ARM_LABELS[arm]} {fmt_pct(last['share'])}",
                "last_day": int(last["day"]),
            }
        )
    x_step = next(s for s in (1, 2, 5, 7, 10, 14, 15, 30, 60, 90, 180, 365, 10**9) if max_day / s <= 8)
    xticks = [
        {"x": round(plot.x0 + span_x * d / max_day, 2), "label": str(d)} for d in range(0, int(max_day) + 1, x_step)
    ]
    unobserved = None
    if window_days is not None and observed_days is not None and observed_days < window_days:
        x = round(plot.x0 + span_x * max(observed_days, 0.0) / max_day, 2)
        unobserved = {"x": x, "width": round(plot.x1 - x, 2), "from_day": fmt_days(observed_days)}
    return {
        "plot": plot,
        "curves": curves,
        "yticks": _y_ticks(plot, ymax, step),
        "xticks": xticks,
        "unobserved": unobserved,
    }


# --------------------------------------------------------------------------------------------------
# Rendering


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _money_formatter(currency: str, locale: str) -> Formatter:
    def money(x: Any) -> str:
        if _missing(x):
            return DASH
        return format_currency(float(x), currency, locale=locale)

    return money


def _period_text(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return "not stated"
    return f"{start.isoformat() if start else '…'} to {end.isoformat() if end else '…'}"


def _overall_record(report: ReportData) -> dict[str, Any]:
    if len(report.overall) != 1:
        raise ValueError(f"overall must be a one-row lift_table frame, got {len(report.overall)} rows")
    return report.overall.iloc[0].to_dict()


def render_html_report(report: ReportData) -> str:
    """Render the report as one self-contained HTML document (inline CSS and SVG, no scripts)."""
    money = _money_formatter(report.currency, report.locale)
    conf = f"{report.confidence * 100:g}%"
    overall = _overall_record(report)
    costs = float(overall["offer_cost"]) + float(overall["message_cost"])
    warning = None if _missing(overall.get("warning")) else str(overall["warning"])

    headline = {
        "customers": fmt_int(overall["n_treated"] + overall["n_holdout"]),
        "n_treated": fmt_int(overall["n_treated"]),
        "n_holdout": fmt_int(overall["n_holdout"]),
        "rate_treated": fmt_pct(overall["rate_treated"]),
        "rate_holdout": fmt_pct(overall["rate_holdout"]),
        "abs_lift": fmt_pp(overall["abs_lift"]),
        "abs_lift_ci": fmt_range(overall["abs_lift_low"], overall["abs_lift_high"], fmt_pp),
        "rel_lift": fmt_pct(overall["rel_lift"], signed=True),
        "rel_lift_ci": fmt_range(overall["rel_lift_low"], overall["rel_lift_high"], lambda v: fmt_pct(v, signed=True)),
        "incremental_revenue": money(overall["incremental_revenue"]),
        "incremental_margin": money(overall.get("incremental_margin")),
        "roi_basis": str(overall.get("roi_basis", "margin")),
        "cost": money(costs),
        "offer_cost": money(overall["offer_cost"]),
        "message_cost": money(overall["message_cost"]),
        "roi": fmt_pct(overall["roi"], signed=True),
        "mde": fmt_pp(overall["mde"], signed=False),
        "warning": warning,
    }

    breakdowns = []
    seen: set[str] = set()
    for name, frame in report.breakdowns.items():
        table_id = f"table-lift-{_slug(name, '-')}"
        if table_id in seen:
            raise ValueError(f"two breakdowns map to the same table id {table_id!r}")
        seen.add(table_id)
        label = f"Lift by {str(name).replace('_', ' ')}"
        breakdowns.append(_lift_table_view(frame, table_id, label, money, conf))

    context = {
        "title": report.title,
        "campaign_id": report.campaign_id,
        "generated_at": report.generated_at.isoformat(sep=" ", timespec="minutes"),
        "period": _period_text(report.period_start, report.period_end),
        "window_open": window_status(report),
        "window_days": report.window_days,
        "conf": conf,
        "headline": headline,
        # The overall row's warning is the headline banner already; its row only gets the flag.
        "overall_table": _lift_table_view(
            report.overall, "table-lift-overall", "Overall lift", money, conf, note=False
        ),
        "rate_chart": _return_rate_chart(overall, report.confidence),
        "retention_chart": _retention_chart(report.retention, report.window_days, report.observed_days),
        "breakdowns": breakdowns,
        "root_causes": None if report.root_causes is None else _root_cause_view(report.root_causes, money),
        "delivery": None if report.delivery is None else _delivery_view(report.delivery),
        "notes": list(report.notes),
    }
    return _environment().get_template("report.html.j2").render(**context)


def _table_files(report: ReportData) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {"lift_overall": report.overall}
    for name, frame in report.breakdowns.items():
        stem = f"lift_{_slug(name, '_')}"
        if stem in tables:
            raise ValueError(f"two breakdowns map to the same file name {stem!r}")
        tables[stem] = frame
    tables["retention"] = report.retention
    if report.root_causes is not None:
        tables["root_causes"] = report.root_causes
    if report.delivery is not None:
        tables["delivery"] = report.delivery
    return tables


def write_report_bundle(report: ReportData, out_dir: Path) -> list[Path]:
    """Write ``report.html`` and a CSV and JSON twin of every table; returns the paths written.

    Files: ``lift_overall``, ``lift_<name>`` per breakdown (name lower-cased, other characters → '_'),
    ``retention`` and, when given, ``root_causes``, each as ``.csv`` and ``.json`` (a list of records,
    NaN as null). The HTML is rendered first so an invalid report leaves no partial bundle behind.
    """
    html_text = render_html_report(report)
    tables = _table_files(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    html_path = out_dir / "report.html"
    html_path.write_text(html_text, encoding="utf-8")
    written.append(html_path)
    for stem, frame in tables.items():
        csv_path = out_dir / f"{stem}.csv"
        frame.to_csv(csv_path, index=False)
        json_path = out_dir / f"{stem}.json"
        json_path.write_text(
            frame.to_json(orient="records", indent=2, date_format="iso", force_ascii=False) + "\n",
            encoding="utf-8",
        )
        written += [csv_path, json_path]
    return written
