"""Writing the demo warehouse: fresh tables, bulk loading per backend, indexes built after, ANALYZE.

SQLite gets `executemany` on the raw DBAPI connection (with fsync off while loading), PostgreSQL psycopg 3's
`COPY ... FROM STDIN`, DuckDB each block as registered pandas frames inserted in one statement per table; one
transaction per chunk in every case.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, DateTime, Engine, Table, inspect, select
from sqlalchemy.schema import CreateIndex

from winback.app.demo_data.blocks import generate_block
from winback.app.demo_data.clock import Clock, build_clock
from winback.app.demo_data.parameters import BLOCK, MAX_CUSTOMERS
from winback.app.demo_data.tables import TABLES, truth_metadata
from winback.app.demo_data.text import timestamp_strings
from winback.errors import StateError
from winback.warehouse.models import SourceBase


class DemoDataExistsError(StateError):
    """The demo's source tables already hold rows and `replace=True` was not given."""


@dataclass(frozen=True)
class DemoSummary:
    """What `generate_demo_warehouse` wrote, with the few truths a demo wants to print."""

    customers: int
    orders: int
    service_failures: int
    consents: int
    alive_at_as_of: int  # customers who had not dropped out by as_of (demo_truth)
    one_time_buyers: int  # customers with exactly one order
    customers_with_failure: int
    invalid_emails: int
    missing_emails: int
    invalid_phones: int
    missing_phones: int
    as_of: dt.datetime
    history_days: int
    seed: int
    dialect: str
    seconds: float

    @property
    def orders_per_customer(self) -> float:
        """Mean orders per customer generated; 0 when there are no customers."""
        return self.orders / self.customers if self.customers else 0.0


class _Sink:
    """Writes a block's raw columns in the backend's bulk format; one transaction per chunk."""

    ts_suffix = ""
    native_bool = False

    def __init__(self, dbapi_connection: Any) -> None:
        self.conn = dbapi_connection

    def encode(self, table: Table, raw: dict[str, Any]) -> list[Sequence[Any]]:
        """Columns in insert order, as Python values the driver takes without adaptation."""
        out: list[Sequence[Any]] = []
        for name, values in raw.items():
            kind = table.c[name].type
            if isinstance(kind, DateTime):
                out.append(timestamp_strings(values, self.ts_suffix))
            elif isinstance(kind, Boolean):
                out.append(values.tolist() if self.native_bool else values.astype(np.int8).tolist())
            elif isinstance(values, np.ndarray):
                out.append(values.tolist())
            else:
                out.append(values)
        return out

    def write(self, table: Table, raw: dict[str, Any]) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.conn.commit()


class _SqliteSink(_Sink):
    def write(self, table: Table, raw: dict[str, Any]) -> None:
        cols = self.encode(table, raw)
        sql = f"INSERT INTO {table.name} ({', '.join(raw)}) VALUES ({', '.join('?' * len(raw))})"
        self.conn.executemany(sql, zip(*cols, strict=True))


class _PostgresSink(_Sink):
    ts_suffix = "+00"
    native_bool = True

    def write(self, table: Table, raw: dict[str, Any]) -> None:
        cols = self.encode(table, raw)
        with self.conn.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(raw)}) FROM STDIN") as copy:
            for row in zip(*cols, strict=True):
                copy.write_row(row)


def _existing_rows(engine: Engine) -> list[str]:
    """Names of demo tables that exist and hold at least one row."""
    present = set(inspect(engine).get_table_names())
    busy = []
    with engine.connect() as conn:
        for name, table in TABLES.items():
            if name in present and conn.execute(select(1).select_from(table).limit(1)).first():
                busy.append(name)
    return busy


def _prepare_schema(engine: Engine, replace: bool) -> list[Any]:
    """Fresh, empty demo tables without their secondary indexes (returned, to build after loading)."""
    busy = _existing_rows(engine)
    if busy and not replace:
        raise DemoDataExistsError(
            f"demo tables already hold rows ({', '.join(busy)}); pass replace=True to drop and regenerate them"
        )
    with engine.begin() as conn:
        truth_metadata.drop_all(conn)
        SourceBase.metadata.drop_all(conn)
        SourceBase.metadata.create_all(conn)
        truth_metadata.create_all(conn)
        indexes = [ix for t in TABLES.values() for ix in t.indexes]
        for ix in indexes:
            ix.drop(conn)
    return indexes


def _finish(engine: Engine, raw: Any, indexes: list[Any]) -> None:
    """Build the secondary indexes on the loaded tables, then refresh planner statistics."""
    names = ", ".join(TABLES)
    cur = raw.cursor()
    for ix in indexes:
        cur.execute(str(CreateIndex(ix).compile(dialect=engine.dialect)))
    if engine.dialect.name == "sqlite":
        cur.execute("PRAGMA analysis_limit=1000")
        cur.execute("ANALYZE")
    elif engine.dialect.name == "duckdb":
        cur.execute("ANALYZE")
    else:
        raw.commit()
        cur.execute(f"ANALYZE {names}")
    raw.commit()
    cur.close()


class _DuckdbSink(_Sink):
    """DuckDB takes a block as pandas frames, column by column: each is registered and inserted in one statement."""

    def write(self, table: Table, raw: dict[str, Any]) -> None:
        columns = {}
        for name, values in raw.items():
            if isinstance(table.c[name].type, DateTime):
                # NULL_TS is int64's minimum, which pandas reads as NaT: no per-value work
                columns[name] = pd.to_datetime(np.asarray(values, dtype=np.int64), unit="us", utc=True)
            else:
                columns[name] = values
        frame = pd.DataFrame(columns)
        self.conn.register("winback_block", frame)
        try:
            names = ", ".join(raw)
            self.conn.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM winback_block")
        finally:
            self.conn.unregister("winback_block")


SINKS: dict[str, type[_Sink]] = {"sqlite": _SqliteSink, "postgresql": _PostgresSink, "duckdb": _DuckdbSink}


BULK_PRAGMAS = {"synchronous": "OFF", "cache_size": -262144}  # no fsync per chunk; 256 MiB for index sorts


def _sqlite_pragmas(raw: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Set connection PRAGMAs and return their previous values, so a pooled connection can be restored."""
    cur = raw.cursor()
    before = {name: cur.execute(f"PRAGMA {name}").fetchone()[0] for name in values}
    for name, value in values.items():
        cur.execute(f"PRAGMA {name}={value}")
    cur.close()
    return before


def generate_demo_warehouse(
    engine: Engine,
    *,
    customers: int,
    seed: int = 7,
    as_of: dt.datetime,
    history_days: int = 730,
    chunk_size: int = 100_000,
    replace: bool = False,
) -> DemoSummary:
    """Create and fill the demo source tables plus `demo_truth`; see the module docstring for the model.

    Raises DemoDataExistsError when the demo tables already hold rows and `replace` is False; with
    `replace=True` they (and only they) are dropped and recreated. Memory is bounded by `chunk_size`
    customers' rows (~10 orders each); data do not depend on `chunk_size`.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS}")
    if history_days < 30:
        raise ValueError("history_days must be at least 30")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    if engine.dialect.name not in SINKS:
        raise NotImplementedError(f"demo bulk loading supports {', '.join(SINKS)}, not {engine.dialect.name}")
    started = time.perf_counter()
    as_of = as_of.astimezone(dt.UTC)
    clock = build_clock(as_of, history_days)
    indexes = _prepare_schema(engine, replace)
    counts: dict[str, int] = {}
    raw = engine.raw_connection()
    sqlite = engine.dialect.name == "sqlite"
    restore = _sqlite_pragmas(raw.driver_connection, BULK_PRAGMAS) if sqlite else {}
    try:
        _load_blocks(SINKS[engine.dialect.name](raw.driver_connection), seed, customers, chunk_size, clock, counts)
        _finish(engine, raw.driver_connection, indexes)
    except BaseException:
        with suppress(Exception):  # DuckDB has no transaction to roll back after some errors: keep the first one
            raw.rollback()
        raise
    finally:
        if sqlite:
            _sqlite_pragmas(raw.driver_connection, restore)
        raw.close()
    return DemoSummary(
        **counts, as_of=as_of, history_days=history_days, seed=seed, dialect=engine.dialect.name,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def _load_blocks(sink: _Sink, seed: int, customers: int, chunk_size: int, clock: Clock, counts: dict[str, int]) -> None:
    """Generate BLOCK customers at a time, write them, commit every `chunk_size` customers."""
    next_ids = {"order": 1, "failure": 1}
    since_commit = 0
    for block_no, start in enumerate(range(0, customers, BLOCK)):
        block = generate_block(seed, block_no, start + 1, min(BLOCK, customers - start), clock, next_ids)
        for name, raw in block.tables.items():
            sink.write(TABLES[name], raw)
        for key, value in block.counts.items():
            counts[key] = counts.get(key, 0) + value
        since_commit += block.counts["customers"]
        if since_commit >= chunk_size:
            sink.commit()
            since_commit = 0
    sink.commit()
