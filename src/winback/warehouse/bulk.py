"""Bulk inserts handed to the DB-API driver as one executemany of tuples.

SQLAlchemy Core's executemany of dicts spends microseconds per row building and processing parameters:
at a million decisions that was half the decide stage. Here each column's values go through the column
type's own bind processor once, column by column (so SQLite stores datetimes and JSON exactly as Core
would), and the driver receives plain tuples: SQLite's executemany and psycopg's (pipelined) alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype
from sqlalchemy import Column, Connection, DateTime, Dialect, Float, Integer, Table

PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # sqlite3 and psycopg take positional tuples


def insert_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any] | pd.Series],
    constants: Mapping[str, Any] | None = None,
    skip_existing: str | None = None,
) -> int:
    """Insert one row per position of `columns` (equal-length value lists), each with the `constants`.

    Values are Python ones (None for missing) or pandas columns (made Python ones here): the driver gets
    them as they are, after the column types' conversions. With `skip_existing` (a unique column), a row
    whose value is already there is left out (ON CONFLICT DO NOTHING, SQLite and PostgreSQL alike).
    Returns the rows inserted.
    """
    dialect = conn.dialect
    constants = constants or {}
    _check_lengths("insert_columns into", table, columns)
    values = [_converted(table.c[name], vals, dialect) for name, vals in columns.items()]
    fixed = [itertools.repeat(_converted(table.c[name], [v], dialect)[0]) for name, v in constants.items()]
    rows = list(zip(*values, *fixed, strict=False))  # the constants repeat forever; the lengths are checked above
    if not rows:
        return 0
    names = [*columns, *constants]
    if dialect.name == "postgresql":
        return _copy_postgresql(conn, table, names, rows, skip_existing)
    return conn.exec_driver_sql(_insert_sql(dialect, table, names, skip_existing), rows).rowcount


def _copy_postgresql(
    conn: Connection, table: Table, names: list[str], rows: list[tuple], skip_existing: str | None
) -> int:
    """COPY, PostgreSQL's bulk path: an INSERT per row, even pipelined, spent 9.5 s on 562k decisions.

    Rows whose `skip_existing` value may already be there go through a temporary table first, then one
    INSERT ... SELECT ... ON CONFLICT DO NOTHING, so the outcome is the executemany's. Runs in the
    connection's own transaction.
    """
    quote = conn.dialect.identifier_preparer
    cols = ", ".join(quote.quote(n) for n in names)
    target = quote.format_table(table)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        into = target
        if skip_existing is not None:
            into = quote.quote(f"_wb_load_{table.name}")
            cursor.execute(f"CREATE TEMP TABLE {into} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP")
        with cursor.copy(f"COPY {into} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if skip_existing is None:
            return len(rows)
        cursor.execute(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {into} "
            f"ON CONFLICT ({quote.quote(skip_existing)}) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"DROP TABLE {into}")
        return inserted
    finally:
        cursor.close()


def update_by_key(conn: Connection, table: Table, key: str, columns: Mapping[str, Sequence[Any]]) -> None:
    """One UPDATE per position of `columns`, matched on the `key` column's value there; one executemany.

    As `insert_columns`: values are Python ones, converted by their column types, bound as tuples.
    """
    names = [name for name in columns if name != key]
    _check_lengths("update_by_key on", table, columns)
    values = [_converted(table.c[name], columns[name], conn.dialect) for name in [*names, key]]
    rows = list(zip(*values, strict=True))
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy_update_postgresql(conn, table, key, names, rows)
        return
    quote, mark = conn.dialect.identifier_preparer, PLACEHOLDERS[conn.dialect.paramstyle]
    assignments = ", ".join(f"{quote.quote(name)} = {mark}" for name in names)
    sql = f"UPDATE {quote.format_table(table)} SET {assignments} WHERE {quote.quote(key)} = {mark}"
    conn.exec_driver_sql(sql, rows)


def _copy_update_postgresql(conn: Connection, table: Table, key: str, names: list[str], rows: list[tuple]) -> None:
    """The updates COPYed into a temporary table, then one UPDATE ... FROM it, in the connection's transaction.

    A key given twice keeps its last values, as the executemany of single UPDATEs would leave it.
    """
    rows = list({row[-1]: row for row in rows}.values())
    quote = conn.dialect.identifier_preparer
    target, temp = quote.format_table(table), quote.quote(f"_wb_update_{table.name}")
    cols = ", ".join(quote.quote(n) for n in [*names, key])
    assignments = ", ".join(f"{quote.quote(n)} = u.{quote.quote(n)}" for n in names)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA")
        with cursor.copy(f"COPY {temp} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE {target} AS t SET {assignments} FROM {temp} AS u WHERE t.{quote.quote(key)} = u.{quote.quote(key)}"
        )
        cursor.execute(f"DROP TABLE {temp}")
    finally:
        cursor.close()


def _check_lengths(what: str, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Refuse columns of different lengths: zipped, they would silently drop or misalign values."""
    lengths = {name: len(vals) for name, vals in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{what} {table.name}: columns of unequal length {lengths}")


def _insert_sql(dialect: Dialect, table: Table, names: list[str], skip_existing: str | None) -> str:
    quote = dialect.identifier_preparer
    marks = ", ".join([PLACEHOLDERS[dialect.paramstyle]] * len(names))
    sql = f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) VALUES ({marks})"
    return sql if skip_existing is None else f"{sql} ON CONFLICT ({quote.quote(skip_existing)}) DO NOTHING"


def _converted(column: Column[Any], values: Sequence[Any] | pd.Series, dialect: Dialect) -> Sequence[Any]:
    """The values as the column's type binds them for this dialect (unchanged when it has no processor).

    Datetimes, which SQLite formats in Python at about a microsecond each, are converted once per distinct
    value: a batch's send and creation times repeat a handful of values. A pandas datetime column for
    SQLite is formatted by numpy instead, all at once (a million distinct times: ~3.5 s → ~0.3 s); so are
    numpy numbers, whose conversions below numpy makes for the whole column (0.5 µs a value in Python).
    """
    kind = column.type
    if isinstance(values, pd.Series):
        if dialect.name == "sqlite" and isinstance(kind, DateTime) and is_datetime64_any_dtype(values.dtype):
            return sqlite_datetimes(values)
        if isinstance(kind, Integer) and _is_numpy(values, "f"):
            return _whole_numbers(values.to_numpy())  # as the loop below makes them; Integer binds as it is
        if isinstance(kind, Float) and _is_numpy(values, "f"):
            return python_values(values)  # Python floats and None: what Float's processor returns them as
        values = python_values(values)
    if isinstance(kind, Integer):  # a float column with gaps: PostgreSQL's COPY refuses the text "3.0"
        values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    if isinstance(kind, DateTime):
        distinct = {v: process(v) for v in set(values)}
        return [distinct[v] for v in values]
    if getattr(kind, "passes_text", False) and all(v is None or v.__class__ is str for v in values):
        return values  # text already serialised, which the type binds unchanged
    return [process(v) for v in values]


def sqlite_datetimes(values: pd.Series) -> list[str | None]:
    """Exactly the text SQLAlchemy's SQLite DateTime stores (the wall time as given, microseconds always)."""
    wall = values.dt.tz_localize(None) if isinstance(values.dtype, pd.DatetimeTZDtype) else values
    stamps = wall.to_numpy().astype("datetime64[us]")
    present = ~np.isnat(stamps)
    out = np.full(len(stamps), None, dtype=object)
    if present.any():  # numpy's replace fails on an empty array
        out[present] = np.char.replace(np.datetime_as_string(stamps[present], unit="us"), "T", " ")
    return out.tolist()


def python_values(series: pd.Series) -> list[Any]:
    """A column as Python values, None where missing: what drivers bind (numpy scalars and NaN they do not).

    numpy numbers and booleans are converted by numpy in one pass (a float column's NaN then made None),
    several times faster than pandas' per-value check for missing values.
    """
    if _is_numpy(series, "biuf"):
        values = series.to_numpy()
        if values.dtype.kind != "f":
            return values.tolist()
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out.tolist()
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _is_numpy(series: pd.Series, kinds: str) -> bool:
    """Whether the column is a plain numpy array of one of these kinds (not a pandas extension type)."""
    return isinstance(series.dtype, np.dtype) and series.dtype.kind in kinds


def _whole_numbers(values: np.ndarray) -> list[Any]:
    """A float array for an integer column: whole numbers as int, NaN as None, anything else as float."""
    out = values.astype(object)
    whole = np.isfinite(values) & (values == np.trunc(values)) & (np.abs(values) < 2**63)
    out[whole] = values[whole].astype(np.int64).astype(object)
    out[np.isnan(values)] = None
    return out.tolist()
