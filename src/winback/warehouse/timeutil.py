"""Time conventions: winback stores and compares UTC.

SQLite hands back naive datetimes, PostgreSQL aware ones; `utc()` makes them alike.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


def utc(value: dt.datetime) -> dt.datetime:
    """Make a datetime aware UTC; naive values are taken to be UTC already (how SQLite returns them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class epoch_days(FunctionElement):
    """Days since 1970-01-01 as a float, portable: used on aggregated rows only, never per order."""

    type = Float()
    inherit_cache = True


@compiles(epoch_days, "sqlite")
def _epoch_days_sqlite(element: epoch_days, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(epoch_days, "postgresql")
def _epoch_days_postgresql(element: epoch_days, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"(extract(epoch from {compiler.process(element.clauses, **kw)}) / 86400.0)"


class epoch_day_number(FunctionElement):
    """The whole UTC day (days since 1970-01-01) a time falls on, per row: to count distinct purchase days."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_day_number, "sqlite")
def _epoch_day_number_sqlite(element: epoch_day_number, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"CAST(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5 AS INTEGER)"


@compiles(epoch_day_number, "postgresql")
def _epoch_day_number_postgresql(element: epoch_day_number, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"CAST(floor(extract(epoch from {compiler.process(element.clauses, **kw)}) / 86400.0) AS INTEGER)"


def to_epoch_days(value: dt.datetime) -> float:
    return utc(value).timestamp() / 86400.0
