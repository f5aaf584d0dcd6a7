"""Bad rows in a business's own tables: each stops the run with an error naming the records and the problem."""

from __future__ import annotations

import pytest
from conftest import AS_OF
from sqlalchemy import Engine, text

from winback.config import CampaignConfig
from winback.segments.scoring import score_customers
from winback.stages import campaign as stages
from winback.warehouse import queries
from winback.warehouse.source import ConsentsSource, FailuresSource, SourceMapping, SourceTables

SRC = SourceTables(SourceMapping())


def test_a_failure_without_severity_is_named(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:  # a copy: the demo's own table refuses a NULL severity, a real one may not
        conn.execute(text("CREATE TABLE failures_export AS SELECT * FROM service_failures"))
        failure = conn.execute(text("SELECT failure_id FROM failures_export ORDER BY occurred_at DESC LIMIT 1"))
        failure_id = failure.scalar_one()
        conn.execute(text("UPDATE failures_export SET severity = NULL WHERE failure_id = :f"), {"f": failure_id})
    export = SourceTables(SourceMapping(failures=FailuresSource(table="failures_export")))
    with pytest.raises(ValueError, match=f"failures_export: severity missing for failure_id {failure_id}$"), \
            demo_engine.connect() as conn:  # fmt: skip
        queries.open_failures(conn, export, AS_OF, 90)


def test_a_consent_history_with_two_rows_for_one_channel_is_named(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        conn.execute(text("CREATE TABLE consent_history AS SELECT * FROM consents"))
        customer = conn.execute(text("SELECT min(customer_id) FROM consents WHERE channel = 'email'")).scalar_one()
        conn.execute(
            text("INSERT INTO consent_history SELECT * FROM consents WHERE customer_id = :c AND channel = 'email'"),
            {"c": customer},
        )
    history = SourceTables(SourceMapping(consents=ConsentsSource(table="consent_history")))
    problem = f"consent_history: more than one row per customer and channel, for {customer};"
    with pytest.raises(ValueError, match=problem), demo_engine.connect() as conn:
        queries.reachability(conn, history)


def test_a_repeat_customer_with_negative_spend_is_named(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        customer = conn.execute(
            text("SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) > 3 ORDER BY 1 LIMIT 1")
        ).scalar_one()
        conn.execute(text("UPDATE orders SET amount = -amount WHERE customer_id = :c"), {"c": customer})
    rfm = stages.summarise_batch(demo_engine, SRC, AS_OF, (None, None))
    with pytest.raises(ValueError, match=f"negative or missing mean order value for repeat customer {customer};"):
        score_customers(rfm, CampaignConfig().economics)
