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
