"""The checks the warehouse does itself: SQLAlchemy Core, built per dialect and per stored column type.

A column the warehouse stores as a number or a time needs no parsing: only its range is checked. A column
stored as text ("12,50", "31/12/2025") is matched against a portable pattern first and cast only where it
matches, so a bad value becomes NULL instead of failing the query (PostgreSQL refuses to cast "12,50"; SQLite
would quietly read 12). SQLite keeps any value in any column, so there the stored type of each value is asked
(`typeof`) and dates are parsed by `julianday`, both in C: no pattern runs per row.

For the big table, orders, the checks run inside the aggregation as a few extra aggregates per customer
(`suspect`): a customer whose group holds anything odd has their rows fetched and judged in Python, where each
bad row is named; everyone else's figures come straight from SQL.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, DateTime, Float, String, and_, case, cast, false, func, not_, or_, type_coerce
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause

from winback.warehouse.quality import EARLIEST, NUMBER_PATTERN, TIMESTAMP_PATTERN, QualityRules
from winback.warehouse.source import SourceSchema, SourceTables, source_schema


class SourceSql:
    """Typed, checked expressions over the source columns, for one connection's dialect and stored types."""

    def __init__(self, conn: Connection, src: SourceTables, rules: QualityRules) -> None:
        self.src = src
        self.rules = rules
        self.schema: SourceSchema = rules.schema or source_schema(conn, src)
        self.sqlite = conn.dialect.name == "sqlite"

    def _key(self, t: TableClause) -> str:
        return next(k for k in ("customers", "orders", "failures", "consents") if getattr(self.src, k) is t)

    def _text(self, t: TableClause, name: str) -> bool:
        return not self.sqlite and self.schema.kind(self._key(t), name) == "text"

    def number(self, t: TableClause, name: str) -> ColumnElement:
        """The column as a number; NULL where text does not read as one (text columns outside SQLite)."""
        col = self.src.col(t, name)
        if self._text(t, name):
            return cast(case((_as_text(col).regexp_match(NUMBER_PATTERN), col)), Float)
        return col

    def time(self, t: TableClause, name: str) -> ColumnElement:
        """The column as a time; NULL where text does not read as an ISO date (text columns outside SQLite).

        On SQLite times are ISO text already and compare as text, as SQLAlchemy writes them.
        """
        col = self.src.col(t, name)
        if self._text(t, name):
            return cast(case((_as_text(col).regexp_match(TIMESTAMP_PATTERN), col)), DateTime(timezone=True))
        return col

    def time_unreadable(self, t: TableClause, name: str) -> ColumnElement[bool]:
        """Per row: a value is stored but is not a time (never true for a column stored as a time)."""
        col = self.src.col(t, name)
        if self.sqlite:
            return and_(col.is_not(None), or_(func.typeof(col) != "text", func.julianday(col).is_(None)))
        if self._text(t, name):
            return and_(col.is_not(None), not_(_as_text(col).regexp_match(TIMESTAMP_PATTERN)))
        return false()

    # ------------------------------------------------------------ aggregate checks, one value per group

    def _missing(self, t: TableClause, name: str, value: ColumnElement) -> list[ColumnElement[bool]]:
        """A missing (or, for text, unreadable) value in the group; nothing to ask of a NOT NULL number or time."""
        if (self._key(t), name) in self.schema.not_null and not self._text(t, name):
            return []
        return [func.count(value) < func.count()]

    def amount_suspect(self, t: TableClause, name: str, value: ColumnElement) -> ColumnElement[bool]:
        """The group holds a missing, unreadable, non-positive, non-finite or implausible amount.

        NaN sorts above every number on PostgreSQL and DuckDB, and on SQLite any text above any number, so
        `max` catches them with the implausible ones.
        """
        return or_(*self._missing(t, name, value), func.min(value) <= 0, func.max(value) > self.rules.max_amount)

    def time_suspect(self, t: TableClause, name: str, value: ColumnElement) -> ColumnElement[bool]:
        """The group holds a missing, unreadable, placeholder (before 1970) or future time."""
        checks = [*self._missing(t, name, value), func.min(value) < EARLIEST, func.max(value) > self.rules.read_at]
        if self.sqlite:
            col = self.src.col(t, name)
            # numbers sort before text: a number stored as a date shows in min; julianday reads the rest
            checks += [func.typeof(func.min(col)) != "text", func.max(func.julianday(col).is_(None)) == 1]
        return or_(*checks)

    def window(self, value: ColumnElement, as_of: dt.datetime) -> ColumnElement[bool]:
        """Rows a read up to `as_of` must see: up to the as-of, and those it must judge (future, unreadable)."""
        return or_(value <= as_of, value > self.rules.read_at, value.is_(None))


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """A condition as 1/0, portable across engines that do and do not return booleans from aggregates."""
    return case((condition, 1), else_=0)


def _as_text(col: ColumnElement) -> ColumnElement:
    """A column stored as text, addressed as text (its declared type is what winback reads it as)."""
    return type_coerce(col, String())
