"""Insert a row once: what webhooks and CRM events use, as providers and CRMs redeliver at will.

A redelivered event must be recorded once and act once, also when two deliveries race: the insert itself
decides (ON CONFLICT DO NOTHING on the event's unique key), not a read before it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any], key: str) -> bool:
    """Insert one row unless `key` (a unique column) already holds its value; True when inserted.

    On PostgreSQL and SQLite this is a single INSERT ... ON CONFLICT DO NOTHING, safe under concurrency.
    """
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = (
            module.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
        )
        return conn.execute(stmt).first() is not None  # (rowcount is not reliable here on psycopg)
    if conn.execute(select(table.c[key]).where(table.c[key] == values[key])).first():
        return False
    conn.execute(insert(table).values(**values))
    return True
