"""The engine factory: what it promises beyond SQLAlchemy's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from winback.warehouse.db import SQLITE_PAGE_SIZE, make_engine


def test_database_errors_do_not_carry_bound_values(db_url: str) -> None:
    """An error's text reaches Prefect's logs: an address bound into the failing statement must not."""
    engine = make_engine(db_url)
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE address = :address"), {"address": "jane@example.com"})
    assert "no_such_table" in str(caught.value)
    assert "jane@example.com" not in str(caught.value)


def test_a_new_sqlite_state_file_gets_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """New files: 16 KiB pages, which a run's bulk insert of its decisions writes quicker. A file made before
    (4 KiB, SQLite's default) keeps its size and opens and writes as before."""
    import sqlite3

    new = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with new.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert conn.execute(text("PRAGMA page_size")).scalar_one() == SQLITE_PAGE_SIZE == 16_384
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    with sqlite3.connect(tmp_path / "old.db") as old_file:
        old_file.execute("CREATE TABLE t (x INTEGER)")
        old_file.execute("INSERT INTO t VALUES (1)")
    old = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with old.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.execute(text("PRAGMA page_size")).scalar_one() == 4096
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
