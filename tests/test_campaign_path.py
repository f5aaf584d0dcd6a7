"""The spine end to end, on SQLite and PostgreSQL: segment → decide → offer → message → send → track."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from conftest import AS_OF
from sqlalchemy import Engine, func, select

from messages.channels.sink import SinkChannel
from offers.policy import CompensationPolicy
from segments.scoring import score_customers
from warehouse.demo_data import simulate_campaign_response
from warehouse.models import CampaignRun, Decision, Offer, OutboxMessage, Return
from warehouse.returns import track_run
from warehouse.source import SourceMapping, SourceTables
from winback import campaign as stages
from winback.config import CampaignConfig

SRC = SourceTables(SourceMapping())


def run_campaign(engine: Engine, config: CampaignConfig, now: dt.datetime = AS_OF) -> stages.RunHandle:
    """The flow's stages in order, without Prefect (the flow itself is tested in test_flows.py)."""
    run = stages.start_run(engine, config, AS_OF)
    if run.status == "started":
        batches = stages.plan_batches(engine, SRC, config.batch_size)
        rfm = pd.concat([stages.summarise_batch(engine, SRC, AS_OF, b) for b in batches], ignore_index=True)
        ctx = [stages.context_batch(engine, SRC, AS_OF, b, config.aggrieved.lookback_days) for b in batches]
        failures = pd.concat([c[0] for c in ctx], ignore_index=True)
        reach = pd.concat([c[1] for c in ctx], ignore_index=True)
        scored, model = score_customers(rfm, config.economics, config.use_models)
        stages.decide_run(engine, run, scored, failures, reach, config, CompensationPolicy.default(), model.as_dict())
    stages.issue_run_offers(engine, run, config)
    stages.queue_run_messages(engine, SRC, run, config, now)
    stages.send_run(engine, run, {"email": SinkChannel(), "sms": SinkChannel()}, config.campaign_id, now)
    return run


def test_batches_partition_every_customer_once(demo_engine: Engine) -> None:
    config = CampaignConfig(batch_size=300)
    batches = stages.plan_batches(demo_engine, SRC, config.batch_size)
    assert len(batches) == 7  # 2,000 customers in ranges of 300
    parts = [stages.summarise_batch(demo_engine, SRC, AS_OF, b) for b in batches]
    whole = stages.summarise_batch(demo_engine, SRC, AS_OF, (None, None))
    joined = pd.concat(parts, ignore_index=True)
    assert joined["customer_id"].is_unique
    pd.testing.assert_frame_equal(joined.sort_values("customer_id", ignore_index=True), whole)


def test_full_path_decides_offers_sends_and_tracks(demo_engine: Engine) -> None:
    config = CampaignConfig(campaign_id="spine", budget=2000.0, holdout_share=0.2, batch_size=700)
    run = run_campaign(demo_engine, config)
    with demo_engine.connect() as conn:
        decisions = pd.read_sql(select(Decision.__table__).where(Decision.run_id == run.run_id), conn)
        offers = pd.read_sql(select(Offer.__table__), conn)
        outbox = pd.read_sql(select(OutboxMessage.__table__), conn)
        status = conn.execute(select(CampaignRun.status).where(CampaignRun.id == run.run_id)).scalar_one()
    assert status == "sent"
    assert decisions["customer_id"].is_unique
    assert set(decisions["action"]) == {"contact", "holdout", "skip"}
    assert decisions["reason"].str.len().min() > 20  # every decision says why
    assert set(decisions["segment"]) == {"lapsed", "aggrieved"}
    contacted = set(decisions.loc[decisions["action"] == "contact", "customer_id"])
    assert set(outbox["customer_id"]) == contacted  # one message per contacted customer, none for others
    with_offer = decisions.loc[(decisions["action"] == "contact") & (decisions["offer_kind"] != "none")]
    assert set(offers["customer_id"]) == set(with_offer["customer_id"])
    assert offers["code"].is_unique
    assert offers["expected_cost"].astype(float).sum() <= config.budget
    # quiet hours: every message is either sent or waiting for its recipient's morning
    assert set(outbox["status"]) <= {"sent", "queued", "skipped"}
    waiting = outbox.loc[outbox["status"] == "queued", "not_before"]
    assert (pd.to_datetime(waiting, utc=True) > pd.Timestamp(AS_OF)).all()
    sink = SinkChannel().records()
    assert len(sink) == (outbox["status"] == "sent").sum()

    response = simulate_campaign_response(demo_engine, run.run_id, window_days=30, true_lift=0.05, seed=5)
    with demo_engine.begin() as conn:
        measured = track_run(conn, SRC, run.run_id, 30)
        returns = pd.read_sql(select(Return.__table__).where(Return.run_id == run.run_id), conn)
    assert measured == (decisions["arm"].notna()).sum()
    returned = returns.groupby("arm")["returned"].sum().to_dict()
    assert returned == {"treatment": response.returned_treatment, "holdout": response.returned_holdout}


def test_rerun_same_date_sends_nothing_twice(demo_engine: Engine) -> None:
    config = CampaignConfig(campaign_id="rerun", budget=2000.0)
    first = run_campaign(demo_engine, config)
    later = AS_OF + dt.timedelta(days=1)  # quiet hours over: everything due is sent
    run_campaign(demo_engine, config, now=later)
    second = run_campaign(demo_engine, config, now=later)
    assert second.run_id == first.run_id
    with demo_engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(CampaignRun)).scalar_one()
        decisions = conn.execute(select(func.count()).select_from(Decision)).scalar_one()
        sent = conn.execute(select(func.count()).where(OutboxMessage.status == "sent")).scalar_one()
        contacts = conn.execute(select(func.count()).where(Decision.action == "contact")).scalar_one()
        skipped = conn.execute(select(func.count()).where(OutboxMessage.status == "skipped")).scalar_one()
    assert runs == 1
    assert decisions > 0
    ids = [r["message_id"] for r in SinkChannel().records()]
    assert len(ids) == len(set(ids)) == sent
    assert sent + skipped == contacts


def test_decisions_keep_the_last_order_the_messages_name(demo_engine: Engine) -> None:
    config = CampaignConfig(campaign_id="last-order", budget=2000.0)
    run = run_campaign(demo_engine, config)
    with demo_engine.connect() as conn:
        decided = pd.read_sql(
            select(Decision.customer_id, Decision.last_order_at).where(Decision.run_id == run.run_id), conn
        )
        orders = pd.read_sql("SELECT customer_id, ordered_at FROM orders", conn)
        queued = pd.read_sql(select(OutboxMessage.customer_id, OutboxMessage.context), conn)
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True)
    truth = orders.loc[orders["ordered_at"] <= pd.Timestamp(AS_OF)].groupby("customer_id")["ordered_at"].max()
    stored = pd.to_datetime(decided.set_index("customer_id")["last_order_at"], utc=True)
    with_orders = stored.index.isin(truth.index)
    assert with_orders.sum() > 100 and stored[with_orders].notna().all() and stored[~with_orders].isna().all()
    drift = (stored[with_orders] - truth.reindex(stored.index[with_orders])).abs()
    assert drift.max() <= pd.Timedelta(milliseconds=1)  # to the millisecond, as SQLite's julianday keeps it
    named = queued.set_index("customer_id")["context"].map(lambda c: c.get("last_order_at"))
    assert len(named) > 50
    assert (pd.to_datetime(named, utc=True) == stored.reindex(named.index)).all()
