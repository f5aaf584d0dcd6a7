"""Bad rows in a business's own tables: each is quarantined, named with its problem, and the rest goes on."""

from __future__ import annotations

from conftest import AS_OF
from sqlalchemy import Engine, text

from winback.stages import reads
from winback.warehouse import queries
from winback.warehouse.quality import Findings
from winback.warehouse.source import ConsentsSource, FailuresSource, SourceMapping, SourceTables

SRC = SourceTables(SourceMapping())


def test_a_failure_without_severity_is_quarantined_not_a_crash(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:  # a copy: the demo's own table refuses a NULL severity, a real one may not
        conn.execute(text("CREATE TABLE failures_export AS SELECT * FROM service_failures"))
        failure = conn.execute(text("SELECT failure_id FROM failures_export ORDER BY occurred_at DESC LIMIT 1"))
        failure_id = failure.scalar_one()
        conn.execute(text("UPDATE failures_export SET severity = NULL WHERE failure_id = :f"), {"f": failure_id})
    export = SourceTables(SourceMapping(failures=FailuresSource(table="failures_export")))
    findings = Findings()
    with demo_engine.connect() as conn:
        out = queries.open_failures(conn, export, AS_OF, 90, findings=findings)
        whole = queries.open_failures(conn, SRC, AS_OF, 90)
    assert failure_id not in set(out["failure_id"]) and len(out) == len(whole) - 1
    assert [r[:6] for r in findings.records] == [
        ("failures_export", failure_id, findings.records[0][2], "severity", None, "missing severity")
    ]


def test_a_consent_history_with_two_rows_for_one_channel_counts_as_not_given(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        conn.execute(text("CREATE TABLE consent_history AS SELECT * FROM consents"))
        customer = conn.execute(
            text("SELECT min(customer_id) FROM consents WHERE channel = 'email' AND granted")
        ).scalar_one()
        conn.execute(
            text("INSERT INTO consent_history SELECT * FROM consents WHERE customer_id = :c AND channel = 'email'"),
            {"c": customer},
        )
    history = SourceTables(SourceMapping(consents=ConsentsSource(table="consent_history")))
    findings = Findings()
    with demo_engine.connect() as conn:
        reach = queries.reachability(conn, history, findings=findings)
    assert reach["customer_id"].is_unique and len(reach) == 2000
    assert not reach.set_index("customer_id").loc[customer, "email_consent"]
    (record,) = findings.records
    assert record[:4] == ("consent_history", f"{customer}/email", customer, "granted")
    assert record[5].startswith("2 consent rows for one customer and channel")


def test_a_repeat_customer_with_negative_amounts_keeps_only_good_rows(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        customer = conn.execute(
            text("SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) > 3 ORDER BY 1 LIMIT 1")
        ).scalar_one()
        negative = (
            conn.execute(
                text("SELECT order_id FROM orders WHERE customer_id = :c ORDER BY ordered_at LIMIT 2"), {"c": customer}
            )
            .scalars()
            .all()
        )
        conn.execute(text("UPDATE orders SET amount = -amount WHERE order_id IN (:a, :b)"),
                     {"a": negative[0], "b": negative[1]})  # fmt: skip
        n_orders = conn.execute(text("SELECT count(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar()
    findings = Findings()
    with demo_engine.connect() as conn:
        summary = queries.customer_summary(conn, SRC, AS_OF, findings=findings)
    row = summary.set_index("customer_id").loc[customer]
    assert row["n_orders"] == n_orders - 2 and row["total_spend"] > 0
    assert sorted(r[1] for r in findings.records) == sorted(negative)
    assert {r[5] for r in findings.records} == {"negative amount"}
    rfm = reads.summarise_batch(demo_engine, SRC, AS_OF, (None, None))
    assert (rfm["mean_spend"] > 0).all()
