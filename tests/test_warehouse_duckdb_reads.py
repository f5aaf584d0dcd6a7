"""DuckDB's fast paths give what the portable ones give: columns fetched as numpy, ids looked up as a list, keys read
from its catalogue."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import column, create_engine, select, table, text

from winback.warehouse.crossread import among, by_ids
from winback.warehouse.frames import fetch_frame, frame_from_rows, raw_rows
from winback.warehouse.readonly import warehouse_engine
from winback.warehouse.source import SourceMapping, SourceTables, source_schema


@pytest.fixture
def duckdb_file(tmp_path: Path) -> str:
    """A small DuckDB warehouse: a text-keyed table with NULLs of every kind, and a number-keyed one."""
    path = tmp_path / "w.duckdb"
    writer = create_engine(f"duckdb:///{path}")
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE t (id VARCHAR PRIMARY KEY, flag BOOLEAN, amount DECIMAL(12,2), "
                          "happened TIMESTAMPTZ, n INTEGER)"))  # fmt: skip
        conn.execute(text("INSERT INTO t VALUES ('a', true, 12.50, '2025-01-01 10:00:00+00', 3), "
                          "('b', NULL, NULL, NULL, NULL), "
                          "('c', false, 0.10, '2025-06-30 23:59:59+02', 7)"))  # fmt: skip
        conn.execute(text("CREATE TABLE k (id INTEGER, v VARCHAR)"))
        conn.execute(text("INSERT INTO k VALUES (1, 'one'), (2, 'two'), (3, NULL)"))
    writer.dispose()
    return f"duckdb:///{path}"


def test_fetch_frame_holds_what_the_rows_hold(duckdb_file: str) -> None:
    engine = warehouse_engine(duckdb_file)
    t = table("t", column("id"), column("flag"), column("amount"), column("happened"), column("n"))
    names = ["id", "flag", "amount", "happened", "n"]
    with engine.connect() as conn:
        fetched = fetch_frame(conn, select(t).order_by(t.c.id), names)
        rows = frame_from_rows(raw_rows(conn, select(t).order_by(t.c.id)), names)
    assert fetched["id"].tolist() == ["a", "b", "c"]
    assert fetched["flag"].tolist() == [True, None, False] == rows["flag"].tolist()
    assert fetched["amount"].iloc[[0, 2]].tolist() == [12.5, 0.1] and pd.isna(fetched["amount"].iloc[1])
    assert fetched["n"].iloc[[0, 2]].tolist() == [3, 7] and pd.isna(fetched["n"].iloc[1])
    expected = pd.to_datetime(rows["happened"], utc=True)
    assert fetched["happened"].dt.tz is not None
    assert fetched["happened"].iloc[[0, 2]].tolist() == expected.iloc[[0, 2]].tolist()  # the same instants, in UTC
    assert pd.isna(fetched["happened"].iloc[1])
    with engine.connect() as conn:
        empty = fetch_frame(conn, select(t).where(t.c.id == "zz"), names, {"n": "float64"})
    assert empty.empty and list(empty.columns) == names
    engine.dispose()


def test_among_finds_the_same_rows_as_an_in_list_for_text_and_number_keys(duckdb_file: str) -> None:
    engine = warehouse_engine(duckdb_file)
    t, k = table("t", column("id")), table("k", column("id"), column("v"))
    with engine.connect() as conn:
        assert sorted(conn.execute(select(t.c.id).where(among(conn, t.c.id, ["c", "a", "x"]))).scalars()) == ["a", "c"]
        # winback holds ids as text: a numeric key is compared as its text
        found = conn.execute(select(k.c.v).where(among(conn, k.c.id, ["2", "3", "9"])).order_by(k.c.id)).scalars()
        assert list(found) == ["two", None]
        frame = by_ids(conn, lambda ids: select(t.c.id).where(among(conn, t.c.id, ids)), ["b", "a", "b"], ["id"])
        assert sorted(frame["id"]) == ["a", "b"]
        assert "unnest" in str(select(t.c.id).where(among(conn, t.c.id, ["a"])).compile(dialect=conn.dialect))
    engine.dispose()


def test_duckdb_declared_keys_come_from_its_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "keys.duckdb"
    writer = create_engine(f"duckdb:///{path}")
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE customers (customer_id VARCHAR PRIMARY KEY, first_name VARCHAR, email VARCHAR, "
                          "phone VARCHAR, locale VARCHAR, time_zone VARCHAR, preferred_channel VARCHAR, "
                          "do_not_contact BOOLEAN, fraud_flag BOOLEAN)"))  # fmt: skip
        conn.execute(text("CREATE TABLE orders (order_id VARCHAR, customer_id VARCHAR, ordered_at TIMESTAMPTZ, "
                          "amount DECIMAL(12,2), coupon_code VARCHAR, UNIQUE (order_id))"))  # fmt: skip
        conn.execute(text("CREATE TABLE service_failures (failure_id VARCHAR, customer_id VARCHAR, order_id VARCHAR, "
                          "category VARCHAR, severity INTEGER, occurred_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, "
                          "description VARCHAR, PRIMARY KEY (failure_id, customer_id))"))  # fmt: skip
        conn.execute(text("CREATE TABLE consents (customer_id VARCHAR, channel VARCHAR, granted BOOLEAN, "
                          "source VARCHAR, recorded_at TIMESTAMPTZ)"))  # fmt: skip
    writer.dispose()
    engine = warehouse_engine(f"duckdb:///{path}")
    with engine.connect() as conn:
        schema = source_schema(conn, SourceTables(SourceMapping()))
    # a key over two columns does not make the failure id unique: winback still checks those itself
    assert schema.unique_keys == frozenset({"customers", "orders"})
    assert schema.kind("orders", "ordered_at") == "time"
    engine.dispose()


def test_dates_compare_as_instants(duckdb_file: str) -> None:
    """A TIMESTAMPTZ written with an offset is read as its UTC instant, whatever the session's zone."""
    engine = warehouse_engine(duckdb_file)
    t = table("t", column("id"), column("happened"))
    with engine.connect() as conn:
        conn.execute(text("SET TimeZone = 'America/New_York'"))
        frame = fetch_frame(conn, select(t.c.id, t.c.happened).where(t.c.id == "c"), ["id", "happened"])
    assert frame["happened"].iloc[0] == pd.Timestamp(dt.datetime(2025, 6, 30, 21, 59, 59, tzinfo=dt.UTC))
    engine.dispose()


def test_distinct_count_on_duckdb_counts_what_count_distinct_counts(duckdb_file: str) -> None:
    """DuckDB's list form of the distinct count gives count(DISTINCT ...)'s numbers, NULLs and empty groups too."""
    from sqlalchemy import distinct, func, literal_column

    from winback.warehouse.summaries import distinct_count

    rows = "VALUES ('a', 1), ('a', 1), ('a', 2), ('a', NULL), ('b', NULL), ('b', NULL), ('c', 5), ('d', 3), ('d', 4)"
    g = select(literal_column("g"), literal_column("d")).select_from(text(f"({rows}) AS v(g, d)")).subquery()
    engine = warehouse_engine(duckdb_file)
    with engine.connect() as conn:
        got = conn.execute(select(g.c.g, distinct_count(g.c.d)).group_by(g.c.g).order_by(g.c.g)).all()
        want = conn.execute(select(g.c.g, func.count(distinct(g.c.d))).group_by(g.c.g).order_by(g.c.g)).all()
    engine.dispose()
    assert "list_unique" in str(select(distinct_count(g.c.d)).compile(dialect=engine.dialect))
    assert [tuple(r) for r in got] == [tuple(r) for r in want] == [("a", 2), ("b", 0), ("c", 1), ("d", 2)]
