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
    """The current time, aware UTC."""
    return dt.datetime.now(dt.UTC)


# Coupon expiry: a code is valid to the end of its last day wherever the customer is. Both sides of that
# promise count in the same zone: the code's `expires_at` (offers) and the date a message prints (messages).
EXPIRY_ZONE = dt.timezone(dt.timedelta(hours=-12), "UTC-12")  # = Etc/GMT+12: the last place a day ends


def day_end(day: dt.date) -> dt.datetime:
    """The last instant of `day` in UTC-12, in UTC: by then `day` is over in every time zone."""
    return dt.datetime.combine(day, dt.time.max, tzinfo=EXPIRY_ZONE).astimezone(dt.UTC)


def expiry_day(expires_at: dt.datetime) -> dt.date:
    """The calendar date a message states for a code expiring at `expires_at` (naive: UTC).

    Its date in UTC-12, the zone `day_end` counts in, so the printed date and the code agree.
    """
    return utc(expires_at).astimezone(EXPIRY_ZONE).date()


class epoch_days(FunctionElement):
    """Days since 1970-01-01 as a float, portable: used on aggregated rows only, never per order."""

    type = Float()
    inherit_cache = True


@compiles(epoch_days, "sqlite")
def _epoch_days_sqlite(element: epoch_days, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(epoch_days, "duckdb")  # DuckDB's extract(epoch ...) is PostgreSQL's, with the fraction
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


@compiles(epoch_day_number, "duckdb")
@compiles(epoch_day_number, "postgresql")
def _epoch_day_number_postgresql(element: epoch_day_number, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"CAST(floor(extract(epoch from {compiler.process(element.clauses, **kw)}) / 86400.0) AS INTEGER)"


def to_epoch_days(value: dt.datetime) -> float:
    """A datetime as days since the Unix epoch (fractional), the unit SQL's `epoch_days` uses."""
    return utc(value).timestamp() / 86400.0


# warehouses read through SQLAlchemy dialects of their own: the same days from each one's epoch function
@compiles(epoch_days, "snowflake")
def _epoch_days_snowflake(element: epoch_days, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"(DATE_PART(epoch_microsecond, {compiler.process(element.clauses, **kw)}) / 86400000000.0)"


@compiles(epoch_day_number, "snowflake")
def _epoch_day_number_snowflake(element: epoch_day_number, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    micros = f"DATE_PART(epoch_microsecond, {compiler.process(element.clauses, **kw)})"
    return f"CAST(FLOOR({micros} / 86400000000.0) AS INTEGER)"


@compiles(epoch_days, "bigquery")
def _epoch_days_bigquery(element: epoch_days, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"(UNIX_MICROS({compiler.process(element.clauses, **kw)}) / 86400000000.0)"


@compiles(epoch_day_number, "bigquery")
def _epoch_day_number_bigquery(element: epoch_day_number, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"CAST(FLOOR(UNIX_MICROS({compiler.process(element.clauses, **kw)}) / 86400000000.0) AS INT64)"
