"""Every read of the source tables compiles for Snowflake and BigQuery (SQLAlchemy Core, no engine's own SQL).

Needs the optional extras (`pip install -e .[snowflake,bigquery]`); skipped without them.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Connection, create_mock_engine
from sqlalchemy.engine import make_url

from winback.warehouse import queries
from winback.warehouse.quality import QualityRules
from winback.warehouse.send_time import send_time_facts
from winback.warehouse.source import KEYS, TABLE_KEYS, SourceMapping, SourceSchema, SourceTables, _kind

AS_OF = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _compiled(dialect_url: str) -> list[str]:
    """Run the source reads on a mock engine of that dialect and return the SQL each compiled to."""
    statements: list[str] = []

    def executor(sql, *args, **kwargs):  # type: ignore[no-untyped-def]
        statements.append(str(sql.compile(dialect=engine.dialect)))
        raise _Stop

    engine = create_mock_engine(dialect_url, executor)
    engine.url = make_url(dialect_url)  # type: ignore[attr-defined]  (source_schema caches per URL)
    src = SourceTables(SourceMapping())
    # what the mapping check would find on a typed warehouse (a mock engine has no catalogue to inspect)
    kinds = {(key, name): _kind(getattr(src, key).c[name].type) for key in TABLE_KEYS for name in
             getattr(src, key).winback_names}  # fmt: skip
    schema = SourceSchema(engine.dialect.name, kinds, frozenset(KEYS))
    src.__dict__["_schemas"] = {engine.url.render_as_string(hide_password=True): schema}
    rules = QualityRules(AS_OF, AS_OF, 10_000.0, 0.05)
    conn: Connection = engine  # type: ignore[assignment]
    reads = [
        lambda: queries.customer_summary(conn, src, AS_OF, ("C1", "C9")),
        lambda: queries.order_summary(conn, src, AS_OF, ("C1", "C9"), rules),
        lambda: queries.reachability(conn, src, ("C1", "C9")),
        lambda: queries.open_failures(conn, src, AS_OF, 90, ("C1", "C9"), rules=rules),
        lambda: queries.contact_details(conn, src, ["C1"]),
        lambda: queries.send_time_flags(conn, src, ["C1"]),
        lambda: send_time_facts(conn, src, ["C1", "C2"], ["C2"]),  # with a journey's follow-up: latest orders
        lambda: queries.failure_profile(conn, src, AS_OF - dt.timedelta(days=30), AS_OF),
        lambda: queries.orders_after(conn, src, AS_OF - dt.timedelta(days=30), AS_OF),
    ]
    for read in reads:
        try:
            read()
        except _Stop:
            pass
        except (AttributeError, TypeError):  # the mock has no inspector: the read stopped before its query
            pass
    return statements


class _Stop(Exception):
    """Raised by the mock executor: the statement compiled, which is all this test asks."""


@pytest.mark.parametrize(("package", "url"), [("snowflake.sqlalchemy", "snowflake://"),
                                               ("sqlalchemy_bigquery", "bigquery://")])  # fmt: skip
def test_every_source_read_compiles_for_the_dialect(package: str, url: str) -> None:
    pytest.importorskip(package)
    statements = _compiled(url)
    assert len(statements) >= 8, statements
    assert all("SELECT" in s.upper() for s in statements)
    assert not any("wb_" in s for s in statements)  # no read of the warehouse names winback's own tables
