"""Table view models: each report table as headers and cells already formatted, for the template to lay out.

Every cell carries its frame column (``data-col``) and, for numbers, the raw value (``data-value``), so a
browser test can check what is shown against what was computed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from winback.reports.formatting import Formatter, fmt_int, fmt_pct, fmt_pp, fmt_range, is_missing
from winback.reports.stats import LIFT_COLUMNS

ROOT_CAUSE_COLUMNS: list[str] = [
    "failure_category",
    "volume",
    "recovery_rate",
    "repeat_failure_rate",
]
"""Required root-cause columns; the report adds ``offer_cost`` (measured) and ``resolved_share``."""


@dataclass(frozen=True)
class Cell:
    """One formatted table cell; `col` and the raw `value` let a browser test check it against the frame."""

    text: str
    col: str
    value: str | None = None  # raw number for data-value
    sub: str | None = None  # small second line: an interval, a group size or a flag
    sub_css: str = "ci"
    css: str = ""


@dataclass(frozen=True)
class Header:
    """A column header; `css` "num" right-aligns a numeric column."""

    text: str  # "\n" marks a line break: short lines keep the columns' natural widths narrow
    css: str = ""


@dataclass(frozen=True)
class TableView:
    """One report table, formatted and ready for the template to lay out."""

    id: str
    caption: str
    headers: list[Header]
    rows: list[list[Cell]]
    note: str | None = None  # shown once under the caption (the lift tables' power warning)


def _raw(x: Any) -> str | None:
    if is_missing(x) or isinstance(x, str | bool):
        return None
    try:
        return repr(float(x))
    except (TypeError, ValueError):
        return None


def _text(x: Any) -> str:
    return "(missing)" if is_missing(x) else str(x)


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
    flagged = [str(w) for w in warnings if not is_missing(w)]
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


def lift_table_view(
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
        flagged = not is_missing(rec.get("warning"))
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


def root_cause_view(frame: pd.DataFrame, money: Formatter) -> TableView:
    """The root-cause table: per failure category its volume, recovery and repeat-failure rates, and any extras."""
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


def delivery_view(frame: pd.DataFrame) -> TableView:
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
