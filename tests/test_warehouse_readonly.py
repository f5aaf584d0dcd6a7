"""warehouse.readonly: the customer's warehouse reads, and refuses every write, on each engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from winback.errors import ConfigError
from winback.warehouse.readonly import warehouse_engine

WRITES = [
    "INSERT INTO customers VALUES ('c-9')",
    "UPDATE customers SET customer_id = 'x'",
    "DELETE FROM customers",
    "CREATE TABLE wb_intruder (a INTEGER)",
    "DROP TABLE customers",
]


def _filled(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (customer_id VARCHAR)"))
        conn.execute(sa.text("INSERT INTO customers VALUES ('c-1'), ('c-2')"))
    engine.dispose()


def _assert_reads_and_refuses_writes(url: str) -> None:
    engine = warehouse_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2
        for statement in WRITES:
            with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
                conn.execute(sa.text(statement))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2
    finally:
        engine.dispose()


def test_sqlite_warehouse_is_opened_read_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    _filled(sa.create_engine(url))
    _assert_reads_and_refuses_writes(url)


def test_duckdb_warehouse_is_opened_read_only(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    _filled(sa.create_engine(url))
    _assert_reads_and_refuses_writes(url)


@pytest.mark.postgres
def test_postgresql_warehouse_transactions_are_read_only(postgres_server: str) -> None:
    from tests.conftest import _new_pg_database

    url = _new_pg_database(postgres_server)
    _filled(sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)))
    _assert_reads_and_refuses_writes(url)


def test_a_warehouse_url_without_its_driver_is_one_line_naming_what_to_install() -> None:
    with pytest.raises(
        ConfigError, match=r"^no driver for mysql:// warehouse URLs .*: install a MySQL driver"
    ) as caught:
        warehouse_engine("mysql://user:secret@db.example/shop")
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_a_released_duckdb_reader_lets_go_of_the_file_and_reads_again(tmp_path: Path) -> None:
    """The campaign releases the warehouse after its reads (DuckDB's cache of them); later reads still work."""
    from winback.warehouse.source import SourceMapping, SourceTables

    path = tmp_path / "shop.duckdb"
    _filled(sa.create_engine(f"duckdb:///{path}"))
    state = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    src = SourceTables(SourceMapping(), warehouse_url=f"duckdb:///{path}")
    reader = src.reader(state)
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2
    assert reader.pool.checkedin() == 1  # the pooled connection holds the file open

    src.release_reader(state)
    assert src.reader(state).pool.checkedin() == 0  # let go

    with src.reader(state).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2
    src.release_reader(state)
    src.release_reader(state)  # nothing open: nothing to do
    assert SourceTables(SourceMapping()).reader(state) is state  # one database: the state engine is never disposed
