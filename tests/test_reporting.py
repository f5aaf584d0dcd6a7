"""The report's delivery table: outbox outcomes and provider events per channel, in HTML and CSV/JSON."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
from conftest import AS_OF, insert_run
from sqlalchemy import Engine, insert, select

from winback.app.demo_data import simulate_campaign_response
from winback.config import CampaignConfig
from winback.reports.build import build_report, delivery_funnel
from winback.reports.html import write_report_bundle
from winback.warehouse.models import MessageEvent, OutboxMessage
from winback.warehouse.returns import track_run
from winback.warehouse.source import SourceMapping, SourceTables


def test_delivery_funnel_counts_outcomes_and_distinct_event_messages(demo_engine: Engine, tmp_path: Path) -> None:
    from test_campaign_path import run_campaign

    config = CampaignConfig(campaign_id="funnel", budget=1000.0, holdout_share=0.2)
    run = run_campaign(demo_engine, config)
    with demo_engine.connect() as conn:
        outbox = pd.read_sql(select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.status), conn)
    sent_email = outbox.loc[(outbox["channel"] == "email") & (outbox["status"] == "sent"), "id"].tolist()
    opened = sent_email[:3]
    events = [
        {"event_key": f"k-{mid}-{kind}-{n}", "outbox_id": mid, "event_type": kind, "occurred_at": AS_OF, "payload": {}}
        for mid in sent_email[:5] for kind in ("delivered",) for n in range(1)
    ] + [  # an open reported twice for the same message counts once
        {"event_key": f"k-{mid}-open-{n}", "outbox_id": mid, "event_type": "open", "occurred_at": AS_OF, "payload": {}}
        for mid in opened for n in range(2)
    ]  # fmt: skip
    with demo_engine.begin() as conn:
        conn.execute(insert(MessageEvent), events)
        funnel = delivery_funnel(conn, run.run_id).set_index("channel")
    expected_sent = outbox.loc[outbox["status"] == "sent"].groupby("channel").size()
    assert funnel["sent"].to_dict() == expected_sent.to_dict()
    assert funnel.loc["email", "event_delivered"] == 5
    assert funnel.loc["email", "event_open"] == 3
    assert funnel.loc["email", "event_click"] == 0

    simulate_campaign_response(demo_engine, run.run_id, window_days=30, true_lift=0.05, seed=1)
    src = SourceTables(SourceMapping())
    with demo_engine.begin() as conn:
        track_run(conn, src, run.run_id, 30, now=AS_OF + dt.timedelta(days=31))
        report = build_report(conn, src, run.run_id, config)
    write_report_bundle(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert 'id="table-delivery"' in html
    twin = json.loads((tmp_path / "delivery.json").read_text())
    assert {row["channel"]: row["event_open"] for row in twin}["email"] == 3


def test_a_redeemed_offer_costs_what_it_was_worth(engine: Engine) -> None:
    """Store credit: its value; percent: that share of the order that used the code; free shipping: the shipping."""
    import datetime as dt
    from decimal import Decimal

    from winback.warehouse.models import Decision, DemoOrder, Offer, Return, SourceBase
    from winback.warehouse.returns import measured_customers

    kinds = {"C1": ("store_credit", "15.00"), "C2": ("percent_discount", "10.00"), "C3": ("free_shipping", "0.00")}
    SourceBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(DemoOrder).values(
            order_id="O-C2", customer_id="C2", ordered_at=AS_OF + dt.timedelta(days=2), amount=Decimal("60.00"),
            coupon_code="WB-C2",
        ))  # fmt: skip
        run = insert_run(conn)
        for cid, (kind, value) in kinds.items():
            conn.execute(insert(Decision).values(
                run_id=run, customer_id=cid, segment="lapsed", action="contact", arm="treatment", offer_kind=kind,
                channel="email", reason="r", decided_at=AS_OF,
            ))  # fmt: skip
            conn.execute(insert(Offer).values(
                code=f"WB-{cid}", run_id=run, customer_id=cid, kind=kind, value=Decimal(value), currency="EUR",
                expected_cost=Decimal("1.00"), issued_at=AS_OF, expires_at=AS_OF + dt.timedelta(days=30),
                redeemed_at=AS_OF + dt.timedelta(days=2), redeemed_order_id=f"O-{cid}",
            ))  # fmt: skip
            conn.execute(insert(Return).values(
                run_id=run, customer_id=cid, arm="treatment", returned=True, first_return_at=AS_OF, orders=1,
                revenue=Decimal("80.00"), redeemed=True, window_days=30, tracked_at=AS_OF,
            ))  # fmt: skip
        demo = SourceTables(SourceMapping())
        frame = measured_customers(conn, run, {"email": 0.002}, 0.3, shipping_cost=4.95, src=demo)
        frame = frame.set_index("customer_id")
    assert frame.loc["C1", "offer_cost"] == 15.0
    assert frame.loc["C2", "offer_cost"] == 6.0  # 10 % of the €60 order that used it, not of the €80 revenue
    assert frame.loc["C3", "offer_cost"] == 4.95
    assert frame["message_cost"].tolist() == [0.002] * 3


def test_data_quality_notes_read_as_plain_english() -> None:
    """(Was "customers: 19 values set aside" and "… not used as they were": table names and jargon.)"""
    from winback.reports.build import quality_note_lines

    counts = pd.DataFrame(
        {
            "source_table": ["consents", "customers", "dim_order", "orders"],
            "scope": ["field", "row", "row", "row"],
            "n": [5, 19, 3, 1],
        }
    )
    notes = quality_note_lines(counts, run_id=7)
    assert notes[0].startswith("Data quality: 28 entries in your data had a problem")
    assert "set them aside; `winback quality --run-id 7` lists each one." in notes[0]
    assert notes[1:] == [
        "Data quality: 5 values in consent rows ignored as unreadable; the rest of each row was used.",
        "Data quality: 19 customer rows set aside: not used at all.",
        "Data quality: 3 rows of dim_order set aside: not used at all.",
        "Data quality: 1 order row set aside: not used at all.",
    ]
    assert not any("values set aside" in n or "as they were" in n or "customers:" in n for n in notes)
    assert quality_note_lines(counts.iloc[:0], run_id=7) == []
    single = quality_note_lines(counts.iloc[3:], run_id=7)[0]
    assert "1 entry in your data had a problem" in single and "set it aside" in single
