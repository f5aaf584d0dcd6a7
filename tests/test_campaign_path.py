"""The spine end to end, on SQLite and PostgreSQL: segment → decide → offer → message → send → track."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import stage_runs
from conftest import AS_OF, environment_sink, send_setup
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from winback.app.demo_data import simulate_campaign_response
from winback.config import CampaignConfig
from winback.segments.scoring import score_customers
from winback.stages import campaign as stages
from winback.stages import reads
from winback.warehouse.models import CampaignRun, Decision, Offer, OutboxMessage, Return
from winback.warehouse.returns import track_run
from winback.warehouse.source import SourceMapping, SourceTables

SRC = SourceTables(SourceMapping())


def run_campaign(
    engine: Engine, config: CampaignConfig, now: dt.datetime = AS_OF, as_of: dt.datetime = AS_OF
) -> stages.RunHandle:
    """The flow's stages in order, without Prefect (the flow itself is tested in test_flows.py).

    A new run is decided, offered, queued and sent by stages.decide_and_send; a run decided already
    resumes at its offers, its queue and its sending, as the flow resumes it.
    """
    with Session(engine) as session, session.begin():
        run = stages.start_run(session, config, as_of)
    if run.status == "started":
        scored, failures, reach, model = read_and_score(engine, config, as_of)
        stage_runs.decide_and_send(engine, run, (scored, failures, reach), config, model, now=now, src=SRC)
        return run
    with Session(engine) as session, session.begin():
        stages.issue_run_offers(session, run, config)
    stages.queue_run_messages(engine, SRC, run, config, now)
    stages.send_run(
        engine, run, {"email": (sink := environment_sink()), "sms": sink}, config.campaign_id, now, setup=send_setup()
    )
    return run


def read_and_score(
    engine: Engine, config: CampaignConfig, as_of: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The source tables read in batches and scored, as the flow's first stages do: scored, failures, reach, model."""
    batches = reads.plan_batches(engine, SRC, config.batch_size)
    rfm = pd.concat([reads.summarise_batch(engine, SRC, as_of, b) for b in batches], ignore_index=True)
    ctx = [reads.context_batch(engine, SRC, as_of, b, config.aggrieved.lookback_days) for b in batches]
    failures = pd.concat([c[0] for c in ctx], ignore_index=True)
    reach = pd.concat([c[1] for c in ctx], ignore_index=True)
    scored, model = score_customers(rfm, config.economics, config.use_models)
    return scored, failures, reach, model.as_dict()


def decide_campaign(engine: Engine, config: CampaignConfig, as_of: dt.datetime = AS_OF) -> stages.RunHandle:
    """The run started and decided, with no offers or messages yet: as a winback before decide_and_send left it."""
    with Session(engine) as session, session.begin():
        run = stages.start_run(session, config, as_of)
    if run.status == "started":
        scored, failures, reach, model = read_and_score(engine, config, as_of)
        stage_runs.decide_only(engine, run, (scored, failures, reach), config, model, src=SRC)
    return run


def test_offers_are_issued_page_by_page_once_each(demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large run issues its codes a page of customers at a time; a re-run after a crash adds only the missing."""
    config = CampaignConfig(campaign_id="pages", budget=2000.0, holdout_share=0.2)
    run = decide_campaign(demo_engine, config)
    monkeypatch.setattr(stages, "OFFER_PAGE", 7)
    with Session(demo_engine) as session, session.begin():
        issued = stages.issue_run_offers(session, run, config)
    with demo_engine.connect() as conn:
        owed = conn.execute(
            select(func.count()).where(
                Decision.run_id == run.run_id, Decision.action == "contact", Decision.offer_kind != "none"
            )
        ).scalar_one()
        offers = pd.read_sql(select(Offer.customer_id, Offer.code).where(Offer.run_id == run.run_id), conn)
    assert issued == owed == len(offers) > 7 * 3  # many pages
    assert offers["customer_id"].is_unique and offers["code"].is_unique
    lost = offers["customer_id"].iloc[::2].tolist()  # a crash before these were committed
    with demo_engine.begin() as conn:
        conn.execute(delete(Offer).where(Offer.run_id == run.run_id, Offer.customer_id.in_(lost)))
    with Session(demo_engine) as session, session.begin():
        assert stages.issue_run_offers(session, run, config) == len(lost)
    with demo_engine.connect() as conn:
        again = pd.read_sql(select(Offer.customer_id).where(Offer.run_id == run.run_id), conn)
    assert sorted(again["customer_id"]) == sorted(offers["customer_id"])


def test_batches_partition_every_customer_once(demo_engine: Engine) -> None:
    config = CampaignConfig(batch_size=300)
    batches = reads.plan_batches(demo_engine, SRC, config.batch_size)
    assert len(batches) == 7  # 2,000 customers in ranges of 300
    parts = [reads.summarise_batch(demo_engine, SRC, AS_OF, b) for b in batches]
    whole = reads.summarise_batch(demo_engine, SRC, AS_OF, (None, None))
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
    sink = environment_sink().records()
    assert len(sink) == (outbox["status"] == "sent").sum()

    response = simulate_campaign_response(demo_engine, run.run_id, window_days=30, true_lift=0.05, seed=5)
    with demo_engine.begin() as conn:
        measured = track_run(conn, SRC, run.run_id, 30, now=AS_OF + dt.timedelta(days=31))
        returns = pd.read_sql(select(Return.__table__).where(Return.run_id == run.run_id), conn)
    assert measured == (decisions["arm"].notna()).sum()
    returned = returns.groupby("arm")["returned"].sum().to_dict()
    assert returned == {"treatment": response.returned_treatment, "holdout": response.returned_holdout}


def test_rerun_same_date_sends_nothing_twice(demo_engine: Engine) -> None:
    config = CampaignConfig(campaign_id="rerun", budget=2000.0)
    first = run_campaign(demo_engine, config)
    later = AS_OF + dt.timedelta(days=1, hours=8)  # quiet hours over in every zone (10:00 in Los Angeles)
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
    ids = [r["message_id"] for r in environment_sink().records()]
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


def test_a_holdout_is_not_contacted_by_any_campaign_while_its_window_is_open(demo_engine: Engine) -> None:
    first = run_campaign(demo_engine, CampaignConfig(campaign_id="first", budget=2000.0, holdout_share=0.3))
    week_later = AS_OF + dt.timedelta(days=7)
    other = CampaignConfig(campaign_id="other", budget=2000.0, holdout_share=0.0, contact={"cooldown_days": 0})
    second = run_campaign(demo_engine, other, now=week_later, as_of=week_later)
    month_later = AS_OF + dt.timedelta(days=31)  # the first run's 30-day window has closed
    third = run_campaign(demo_engine, other.model_copy(update={"campaign_id": "third"}), month_later, month_later)

    def decisions(run: stages.RunHandle) -> pd.DataFrame:
        with demo_engine.connect() as conn:
            stmt = select(Decision.customer_id, Decision.action, Decision.reason).where(Decision.run_id == run.run_id)
            return pd.read_sql(stmt, conn).set_index("customer_id")

    held = decisions(first).query("action == 'holdout'").index
    assert len(held) > 50
    later = decisions(second).reindex(held).dropna()
    assert len(later) > 0.8 * len(held)  # most are still candidates a week on
    assert (later["action"] == "skip").all()
    assert later["reason"].str.startswith("excluded: in the holdout of first 2026-11-02 until 2026-12-02").all()
    assert (decisions(third).reindex(held).dropna()["action"] == "contact").any()


def test_cooldown_counts_from_when_a_message_was_sent_or_is_due(demo_engine: Engine) -> None:
    from sqlalchemy import update

    from winback.warehouse.runs import contact_history

    run = run_campaign(demo_engine, CampaignConfig(campaign_id="cool", budget=2000.0))
    with demo_engine.begin() as conn:  # queued a week before it went out (or before it is due)
        conn.execute(update(OutboxMessage).values(created_at=AS_OF - dt.timedelta(days=7)))
        outbox = pd.read_sql(select(OutboxMessage.customer_id, OutboxMessage.status, OutboxMessage.not_before), conn)
        history = contact_history(conn, AS_OF + dt.timedelta(days=10), exclude_run_id=run.run_id + 1)
    days = history.set_index("customer_id")["days_since_contact"]
    sent = outbox.loc[outbox["status"] == "sent", "customer_id"]
    assert len(sent) > 100 and ((days[sent] - 10.0).abs() < 0.01).all()  # not 17: the send is the contact
    waiting = outbox.loc[outbox["status"] == "queued"]
    due_in = pd.Timestamp(AS_OF + dt.timedelta(days=10)) - pd.to_datetime(waiting["not_before"], utc=True)
    assert len(waiting) > 0
    assert (days[waiting["customer_id"]].to_numpy() == (due_in.dt.total_seconds() / 86400).to_numpy()).all()


def test_exported_percent_codes_carry_the_capped_amount_as_their_maximum_discount(
    demo_engine: Engine, tmp_path: Path
) -> None:
    import csv

    from winback.offers.exchange import export_codes

    run = run_campaign(demo_engine, CampaignConfig(campaign_id="export", budget=2000.0))
    path = tmp_path / "codes.csv"
    with demo_engine.connect() as conn:
        export_codes(conn, run.run_id, path)
        decided = pd.read_sql(
            select(Decision.customer_id, Decision.offer_amount).where(Decision.run_id == run.run_id), conn
        ).set_index("customer_id")["offer_amount"]
    rows = list(csv.DictReader(path.open()))
    percent = [r for r in rows if r["kind"] == "percent_discount"]
    assert percent and all(r["max_discount"] for r in percent)
    for row in percent:
        assert float(row["max_discount"]) == pytest.approx(decided[row["customer_id"]], abs=0.005)
        assert float(row["max_discount"]) > 0
    assert all(r["max_discount"] == "" for r in rows if r["kind"] != "percent_discount")
