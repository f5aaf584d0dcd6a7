"""Alembic migrations: the migrated schema is the models' schema, and each step keeps the rows it finds."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from winback.warehouse.db import make_engine
from winback.warehouse.migrate import current, upgrade
from winback.warehouse.models import Base, Campaign, CampaignRun, Decision

NOW = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(db_url, engine=engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
    assert current(db_url) == "0005_decision_features"


def test_decisions_recorded_before_0002_keep_their_rows_with_no_last_order(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(db_url, revision="0001", engine=engine)
    assert "last_order_at" not in {c["name"] for c in inspect(engine).get_columns("wb_decisions")}
    with engine.begin() as conn:  # rows as 0001 stores them: the insert names only 0001's columns
        conn.execute(insert(Campaign.__table__).values(id="c", kind="winback", config={}, created_at=NOW))
        run = {"campaign_id": "c", "as_of": NOW, "status": "decided", "started_at": NOW, "stats": {}}
        run_id = conn.execute(insert(CampaignRun.__table__).values(**run)).inserted_primary_key[0]
        old = {"run_id": run_id, "segment": "lapsed", "action": "skip", "reason": "r", "decided_at": NOW}
        conn.execute(insert(Decision.__table__), [{**old, "customer_id": "C1"}, {**old, "customer_id": "C2"}])
    engine.dispose()

    upgrade(db_url, engine=engine)
    with engine.connect() as conn:
        rows = conn.execute(select(Decision.customer_id, Decision.last_order_at).order_by(Decision.customer_id)).all()
    assert [tuple(r) for r in rows] == [("C1", None), ("C2", None)]
