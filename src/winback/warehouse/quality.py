"""The gate on the business's rows: each is checked before it is used; a bad one is named and set aside.

Real exports hold "12,50" for an amount, "31/12/2025" or 2099 for a date, "high" for a severity, an id twice or
with spaces around it. Such a row is **quarantined**: recorded here with its table, record id, field, value and
problem (`Findings`), then left out of every decision; the run goes on with the rest. Too many bad rows in one
table mean a broken feed, and the caller stops the run instead (`data_quality.max_bad_share`).

This module parses and judges values in Python, on the rows a read has fetched; `quality_sql` holds the checks
the warehouse does itself, so the large tables never travel to Python to be checked.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from winback.errors import DataError
from winback.warehouse.source import SourceSchema

FINDING_COLUMNS = ["source_table", "record_id", "customer_id", "field", "value", "problem", "scope"]
ROW = "row"  # the row is not used at all
FIELD = "field"  # one value is not used; the row goes on with the fallback the problem names
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # before this, a date is a placeholder ("0001-01-01"), not history
SEVERITY_SCALE = (1, 5)  # the compensation policy's scale (offers.policy refuses rules outside it)
ID_MAX = 64  # winback stores customer, order and failure ids in 64 characters
VALUE_SHOWN = 80  # a quarantined value is kept to this many characters

# Portable patterns (POSIX classes only, no \d or non-capturing groups), shared with the SQL checks.
NUMBER_PATTERN = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$"
_LEAP_YEAR = r"(19|2[0-9])(0[48]|[2468][048]|[13579][26])|2[048]00"
_DAY = (
    r"((19|2[0-9])[0-9][0-9]-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    rf"|02-(0[1-9]|1[0-9]|2[0-8]))|({_LEAP_YEAR})-02-29)"
)
# a date, or a date and time, that every engine casts without error: the calendar is in the pattern
_TIME = r"([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?)?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?"
TIMESTAMP_PATTERN = f"^{_DAY}{_TIME}{_OFFSET}$"
_NUMBER = re.compile(NUMBER_PATTERN)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)
_WHOLE = re.compile(r"^[+-]?[0-9]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = frozenset({"1", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "n", "no"})


@dataclass(frozen=True)
class QualityRules:
    """What a read accepts, for one run: its as-of, its clock, the limits and the duplicate keys found up front.

    `now` is when the run reads: a row dated after it is in the future (a placeholder such as 2099, or a
    wrong clock) and is quarantined; a row between the as-of and `now` is history the as-of does not see yet.
    """

    as_of: dt.datetime
    now: dt.datetime
    max_amount: float = 100_000.0
    max_bad_share: float = 0.05
    schema: SourceSchema | None = None
    # ids found more than once by a whole-table check up front (None: not checked; each read asks for its own ids)
    duplicate_orders: dict[str, tuple[str, ...]] | None = None  # order id -> the customers whose rows carry it
    duplicate_failures: dict[str, int] | None = None  # failure id -> how many rows carry it

    @property
    def read_at(self) -> dt.datetime:
        """The moment a row's date may not pass: the later of the as-of and the run's clock."""
        return max(self.as_of, self.now)


@dataclass
class Findings:
    """Quarantined rows and set-aside values, and how many rows of each table were read (for the shares)."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    read: Counter[str] = field(default_factory=Counter)
    held_customers: set[str] = field(default_factory=set)  # customers whose own record is quarantined (ids as read)

    def add(
        self,
        table: str,
        record_id: Any,
        field_name: str,
        value: Any,
        problem: str,
        *,
        customer_id: Any = None,
        scope: str = ROW,
    ) -> None:
        """Quarantine one value of one record, its personal data masked as it is kept."""
        self.records.append((table, shown(record_id), shown(customer_id), field_name, shown(value), problem, scope))

    def add_rows(self, table: str, rows: pd.DataFrame, *, scope: str = ROW) -> None:
        """Rows with columns record_id, customer_id, field, value, problem (one finding each)."""
        for rec in rows[["record_id", "customer_id", "field", "value", "problem"]].itertuples(index=False):
            self.add(table, rec[0], rec[2], rec[3], rec[4], customer_id=rec[1], scope=scope)

    def count_read(self, table: str, rows: int) -> None:
        """Count rows read from `table`: the denominator of its bad share."""
        self.read[table] += int(rows)

    def extend(self, other: Findings) -> Findings:
        """Take in another batch's findings (reads counted, held customers kept)."""
        self.records.extend(other.records)
        self.read.update(other.read)
        self.held_customers |= other.held_customers
        return self

    def frame(self) -> pd.DataFrame:
        """The findings as a frame, one row per quarantined value, as `wb_quarantine` stores them."""
        return pd.DataFrame.from_records(self.records, columns=FINDING_COLUMNS)

    def bad_rows(self) -> Counter[str]:
        """Quarantined rows per table (a set-aside value leaves its row in use, so it is not counted)."""
        return Counter(r[0] for r in self.records if r[6] == ROW)

    def __len__(self) -> int:
        return len(self.records)


def missing(value: Any) -> bool:
    """None, or what pandas puts in a missing cell (NaN, NaT, NA)."""
    return value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def shown(value: Any) -> str | None:
    """A value as the quarantine shows it: text quoted when spaces or control characters would hide, cut short."""
    if missing(value):
        return None
    if isinstance(value, dt.datetime | pd.Timestamp):
        text = value.isoformat()
    elif isinstance(value, str):
        text = repr(value) if (value != value.strip() or _CONTROL.search(value) or not value) else value
    else:
        text = str(value)
    return text if len(text) <= VALUE_SHOWN else f"{text[: VALUE_SHOWN - 1]}… ({len(text):,} characters)"


def quoted(value: Any) -> str:
    """A value as a problem names it: text in quotes (so "12,50" and " c012 " read as what was stored)."""
    if isinstance(value, str):
        cut = value if len(value) <= VALUE_SHOWN else value[:VALUE_SHOWN] + "…"
        return repr(cut)
    return str(shown(value))


# ---------------------------------------------------------------- values, judged one column at a time
# Each returns the parsed values and, per value, the problem (None when it is fine), as object arrays.


def _by_value(values: pd.Series, judge: Any) -> tuple[list[Any], list[Any]]:
    """`judge(value) -> (parsed, problem)` applied once per distinct value (columns repeat a few values)."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    judged = [judge(v) for v in uniques.tolist()]
    missing_judged = judge(None)
    parsed = [judged[c][0] if c >= 0 else missing_judged[0] for c in codes.tolist()]
    problems = [judged[c][1] if c >= 0 else missing_judged[1] for c in codes.tolist()]
    return parsed, problems


def parse_amounts(values: pd.Series, max_amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Order amounts as floats (NaN where bad) and each bad one's problem."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        number = values.to_numpy(dtype=float, na_value=np.nan)
        problems = np.full(len(values), None, dtype=object)
        odd = ~(np.isfinite(number) & (number > 0) & (number <= max_amount))
        for i in np.flatnonzero(odd):  # a float column holds NULL and NaN alike
            problems[i] = "missing amount, or NaN" if np.isnan(number[i]) else _amount(number[i], max_amount)[1]
        return np.where(odd, np.nan, number), problems
    parsed, problems = _by_value(values, lambda v: _amount(v, max_amount))
    return np.array(parsed, dtype=float), np.array(problems, dtype=object)


def _amount(v: Any, max_amount: float) -> tuple[float, str | None]:
    if missing(v):
        return math.nan, "missing amount"
    if isinstance(v, Decimal) and v.is_nan():
        return math.nan, "not a finite number"
    if isinstance(v, bool):
        return math.nan, f"{quoted(v)} is not an amount"
    if isinstance(v, str):
        if not _NUMBER.match(v):
            hint = " (a decimal comma? write 12.50)" if re.fullmatch(r"[+-]?[0-9.]*,[0-9]+", v.strip()) else ""
            return math.nan, f"{quoted(v)} is not a number{hint}"
        v = float(v)
    try:
        number = float(v)
    except (TypeError, ValueError):
        return math.nan, f"{quoted(v)} is not a number"
    if not math.isfinite(number):
        return math.nan, "not a finite number"
    if number < 0:
        return math.nan, "negative amount"
    if number == 0:
        return math.nan, "zero amount"
    if number > max_amount:
        return math.nan, f"above the plausible maximum of {max_amount:,.0f} (data_quality.max_plausible_amount)"
    return number, None


def parse_times(values: pd.Series, now: dt.datetime, *, required: bool = True) -> tuple[pd.Series, np.ndarray]:
    """Times as UTC timestamps (NaT where bad or missing) and each bad one's problem.

    Text must be ISO 8601 ("2025-12-31", "2025-12-31 18:30:00", with an optional offset); a time without an
    offset is UTC, as winback stores it. Missing is a problem only when `required`.
    """
    problems = np.full(len(values), None, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # a time column, NULL as NaT: nothing to read
        kinds = np.where(values.isna().to_numpy(), "missing", "time")
        items: list[Any] = values.tolist()
    else:
        items = values.astype(object).tolist()
        kinds = np.array([_time_kind(v) for v in items], dtype=object)
    good_text = np.array(
        [k == "text" and _TIMESTAMP.match(v) is not None for k, v in zip(kinds, items, strict=True)], dtype=bool
    )  # typed: an id range may have no row at all
    for i in np.flatnonzero((kinds == "text") & ~good_text):
        problems[i] = f"{quoted(items[i])} is not a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"
    for i in np.flatnonzero(kinds == "other"):
        problems[i] = f"{quoted(items[i])} is not a date"
    if required:
        problems[kinds == "missing"] = "missing date"
    readable = good_text | (kinds == "time")
    iso = [v.replace("Z", "+00:00") if isinstance(v, str) else v for v in items]  # "Z": an offset pandas reads
    source = pd.Series(iso, index=values.index, dtype=object).where(readable, None)
    stamps = pd.to_datetime(source, utc=True, format="mixed", errors="coerce").astype("datetime64[us, UTC]")
    early = (stamps < pd.Timestamp(EARLIEST)).to_numpy() & readable
    late = (stamps > pd.Timestamp(now)).to_numpy() & readable
    for i in np.flatnonzero(early):
        problems[i] = f"dated {stamps.iat[i]:%Y-%m-%d}, before {EARLIEST:%Y}: a placeholder, not a date"
    for i in np.flatnonzero(late):
        problems[i] = f"dated {stamps.iat[i]:%Y-%m-%d %H:%M}, in the future (read at {now:%Y-%m-%d %H:%M} UTC)"
    stamps = stamps.where(readable & ~early & ~late)
    return stamps, problems


def _time_kind(v: Any) -> str:
    if missing(v):
        return "missing"
    if isinstance(v, str):
        return "text"
    return "time" if isinstance(v, dt.date) else "other"


def parse_severities(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Severities as floats (NaN where bad) and each bad one's problem: whole numbers on the policy's scale."""
    parsed, problems = _by_value(values, _severity)
    return np.array(parsed, dtype=float), np.array(problems, dtype=object)


def _severity(v: Any) -> tuple[float, str | None]:
    low, high = SEVERITY_SCALE
    if missing(v):
        return math.nan, "missing severity"
    number: float | None = None
    if isinstance(v, str) and _WHOLE.match(v.strip()) and v == v.strip():
        number = float(int(v))
    elif isinstance(v, int | float | Decimal | np.integer | np.floating) and not isinstance(v, bool | np.bool_):
        number = float(v) if math.isfinite(float(v)) and float(v) == int(float(v)) else None
    if number is None:
        return math.nan, f"{quoted(v)} is not a whole number on the {low}–{high} scale"
    if not low <= number <= high:
        return math.nan, f"severity {number:g} outside the compensation policy's {low}–{high} scale"
    return number, None


def parse_flags(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Yes/no values as booleans (missing = no) and each unreadable one's problem.

    Read strictly: "no" is not True because it is a non-empty string.
    """

    def judge(v: Any) -> tuple[bool, str | None]:
        flag = as_flag(v)
        return (False, f"{quoted(v)} is not a yes/no value") if flag is None else (flag, None)

    if pd.api.types.is_numeric_dtype(values.dtype) and values.isin([0, 1]).sum() + values.isna().sum() == len(values):
        return values.fillna(0).to_numpy() == 1, np.full(len(values), None, dtype=object)  # 0/1, as SQLite keeps them
    parsed, problems = _by_value(values, judge)
    return np.array(parsed, dtype=bool), np.array(problems, dtype=object)


def as_flag(v: Any) -> bool | None:
    """True, False, or None when `v` is not a yes/no value; missing is False."""
    if missing(v):
        return False
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | float | np.integer | np.floating) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        text = v.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


_ODD_ID = re.compile(r"^\s|\s$|[\x00-\x1f\x7f]|^$")


def id_problems(values: pd.Series, what: str) -> np.ndarray:
    """Per id: missing, surrounding whitespace, control characters, or too long to store; else None.

    One regular expression per id (a million ids in a few tenths of a second); only the odd ones get words.
    """
    problems = np.full(len(values), None, dtype=object)
    if pd.api.types.is_numeric_dtype(values.dtype):
        problems[values.isna().to_numpy()] = f"missing {what}"
        return problems  # a numeric key is read as its text
    items = values.tolist()
    if _all_clean_ids(items):
        return problems
    for i, v in enumerate(items):
        if isinstance(v, str):
            if len(v) <= ID_MAX and _ODD_ID.search(v) is None:
                continue
            if not v.strip():
                problems[i] = f"missing {what}"
            elif v != v.strip():
                problems[i] = f"{what} {quoted(v)} has surrounding whitespace"
            elif _CONTROL.search(v):
                problems[i] = f"{what} contains control characters"
            else:
                problems[i] = f"{what} longer than {ID_MAX} characters"
        elif missing(v):
            problems[i] = f"missing {what}"
    return problems


_SEPARATOR = "\n"
# a control character, or whitespace (as `\s` has it), other than the separator: one character class
_ODD_BUT_SEPARATOR = re.compile("[\x00-\x09\x0b-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_VISIBLE_ASCII = bytes(range(0x21, 0x7F))  # what an ASCII id may hold: anything else is odd (or the separator)


def _all_clean_ids(items: list[Any]) -> bool:
    """Whether every id is text, clean and short enough, decided over all of them at once (C loops, no regex per id).

    The ids are joined by a line break and searched once: no control character, no whitespace but the line
    breaks between them (so none around an id), and no line break inside an id (counted, not matched one by
    one). Whitespace inside an id, or anything else unsure, answers False, and the caller judges each id.
    """
    if not items or set(map(type, items)) != {str}:  # exactly str: anything else is judged one by one
        return False
    lengths = list(map(len, items))
    if min(lengths) == 0 or max(lengths) > ID_MAX:
        return False
    joined = _SEPARATOR.join(items)
    if joined.isascii():  # the usual case: delete every visible character, and only the separators may be left
        rest = joined.encode("ascii").translate(None, _VISIBLE_ASCII)
        return len(rest) == rest.count(_SEPARATOR.encode()) == len(items) - 1
    return joined.count(_SEPARATOR) == len(items) - 1 and _ODD_BUT_SEPARATOR.search(joined) is None


def first_problem(*columns: tuple[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(field, problem) of each row's first problem across `columns` (name, problems), in the order given."""
    size = len(columns[0][1]) if columns else 0
    fields = np.full(size, None, dtype=object)
    problems = np.full(size, None, dtype=object)
    for name, column in columns:
        hit = (problems == None) & (column != None)  # noqa: E711 (element-wise on object arrays)
        fields[hit] = name
        problems[hit] = column[hit]
    return fields, problems


def check_share(findings: Findings, table: str, max_share: float, *, bad: int | None = None) -> None:
    """Stop the run when more than `max_share` of `table`'s rows read are bad: a broken feed, not a bad row.

    Raises a DataError naming the table, the share and the first bad records; nothing has been stored yet.
    """
    read = findings.read[table]
    bad = findings.bad_rows()[table] if bad is None else bad
    if not read or bad / read <= max_share:
        return
    first = [f"{rec[1]} ({rec[3]}: {rec[5]})" for rec in findings.records if rec[0] == table and rec[6] == ROW][:3]
    raise DataError(
        f"{table}: {bad:,} of the {read:,} rows read are bad ({bad / read:.1%}, over data_quality.max_bad_share "
        f"{max_share:.0%}), first {'; '.join(first)}: nothing was decided, stored or sent; fix the feed, or raise "
        "data_quality.max_bad_share"
    )
