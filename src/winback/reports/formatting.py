"""Number formatting for the report: the formats are part of the contract with the tests.

Rates "15.2%", lifts "+4.1 pp", relative lift / ROI "+27.0%", money "€1,234.50", counts "1,234"; a missing
value is a dash everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from babel.numbers import format_currency

DASH = "—"
Formatter = Callable[[Any], str]


def fmt_days(days: float) -> str:
    """Days observed, rounded down to a tenth: 29.96 days is not yet "30 of 30"; whole days show no ".0"."""
    return f"{math.floor(days * 10 + 1e-9) / 10:g}"


def is_missing(x: Any) -> bool:
    """None, NaN, NA or NaT: shown as a dash. Values pandas cannot test (lists, objects) are not missing."""
    try:
        return x is None or bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt_pct(x: Any, *, signed: bool = False) -> str:
    """A rate as a percentage ("15.2%"), signed when `signed` (relative lift, ROI)."""
    if is_missing(x):
        return DASH
    if math.isinf(x):
        return "∞"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def fmt_pp(x: Any, *, signed: bool = True) -> str:
    """A difference of rates in percentage points ("+4.1 pp"); infinite is "not detectable"."""
    if is_missing(x):
        return DASH
    if math.isinf(x):
        return "not detectable"
    return f"{x * 100:+.1f} pp" if signed else f"{x * 100:.1f} pp"


def fmt_int(x: Any) -> str:
    """A count with thousands separators ("1,234")."""
    return DASH if is_missing(x) else f"{int(x):,}"


def fmt_range(low: Any, high: Any, fmt: Formatter) -> str:
    """An interval as "low to high", each end formatted by `fmt`; a dash when either end is missing."""
    if is_missing(low) or is_missing(high):
        return DASH
    return f"{fmt(low)} to {fmt(high)}"


def slug(name: str, sep: str) -> str:
    """A breakdown's name for file names and HTML ids: lower case, other characters as `sep`."""
    slug = re.sub(r"[^a-z0-9]+", sep, str(name).lower()).strip(sep)
    if not slug:
        raise ValueError(f"breakdown name {name!r} has no letters or digits")
    return slug


def money_formatter(currency: str, locale: str) -> Formatter:
    """A formatter of money in `currency`, written the way `locale` writes it ("€1,234.50")."""

    def money(x: Any) -> str:
        if is_missing(x):
            return DASH
        return format_currency(float(x), currency, locale=locale)

    return money
