"""The engine factory: what it promises beyond SQLAlchemy's defaults."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from winback.warehouse.db import make_engine


def test_database_errors_do_not_carry_bound_values(db_url: str) -> None:
    """An error's text reaches Prefect's logs: an address bound into the failing statement must not."""
    engine = make_engine(db_url)
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE address = :address"), {"address": "jane@example.com"})
    assert "no_such_table" in str(caught.value)
    assert "jane@example.com" not in str(caught.value)
