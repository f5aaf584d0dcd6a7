"""Campaign runs and their decisions: get-or-create by (campaign, as-of): a re-run resumes, never repeats."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import Session

from winback.warehouse.bulk import insert_columns
from winback.warehouse.json_rows import json_objects
from winback.warehouse.models import Campaign, CampaignRun, Decision, OutboxMessage, Suppression
from winback.warehouse.timeutil import utc, utcnow

RUN_STAGES = ("started", "decided", "offered", "queued", "sent", "completed")


def ensure_campaign(session: Session, campaign_id: str, kind: str, config: dict[str, Any]) -> Campaign:
    """The campaign row, created on first use; its stored config is replaced by this run's."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        campaign = Campaign(id=campaign_id, kind=kind, config=config, created_at=utcnow())
        session.add(campaign)
    else:
        campaign.config = config
    session.flush()
    return campaign


def get_or_start_run(session: Session, campaign_id: str, as_of: dt.datetime) -> CampaignRun:
    """The run for this campaign and date; a crashed or repeated run picks up where it stopped."""
    as_of = utc(as_of)
    run = session.scalars(
        select(CampaignRun).where(
            CampaignRun.campaign_id == campaign_id, CampaignRun.as_of == as_of, CampaignRun.journey_key == ""
        )
    ).one_or_none()
    if run is None:
        run = CampaignRun(campaign_id=campaign_id, as_of=as_of, status="started", started_at=utcnow(), stats={})
        session.add(run)
        session.flush()
    return run


def advance(session: Session, run_id: int, stage: str, **stats: Any) -> None:
    """Move a run forward (never back) and merge figures into its stats."""
    run = session.get(CampaignRun, run_id)
    if run is None:
        raise ValueError(f"campaign run {run_id} does not exist")
    if RUN_STAGES.index(stage) > RUN_STAGES.index(run.status):
        run.status = stage
    run.stats = {**(run.stats or {}), **stats}
    if stage == "completed":
        run.finished_at = utcnow()


def contacts_decided(conn: Connection, run_id: int) -> int:
    """How many customers the run decided to contact: the messages it will queue."""
    stmt = select(func.count()).where(Decision.run_id == run_id, Decision.action == "contact")
    return int(conn.execute(stmt).scalar_one())


# every column a decision carries, as the table defines them (the run and the time are added on insert)
DECISION_FIELDS = tuple(c.name for c in Decision.__table__.columns if c.name not in ("id", "run_id", "decided_at"))
# columns a decision may lack (stored as NULL): what it knew, the uplift predicted, the variant drawn
OPTIONAL_DECISION_FIELDS = ("features", "predicted_uplift", "predicted_spend_uplift", "variant")


def record_decisions(
    conn: Connection,
    run_id: int,
    decisions: pd.DataFrame,
    features: pd.DataFrame | None = None,
    chunk: int = 50_000,
    *,
    features_kept: pd.Series | None = None,
) -> int:
    """Insert one row per considered customer; the run's unique key makes a second insert fail loudly.

    ``features`` (aligned with ``decisions``) is what each decision knew, stored as one JSON object per row,
    without the columns a segment has no value for; ``features_kept`` (aligned, boolean; default every row)
    says whose are stored, the others' left NULL. Chunked, the JSON too, so a million decisions never exist
    as Python objects all at once; each chunk's rows are taken from the frames as it is written, never the
    whole frames copied in storage order (two copies: ~180 MiB at a million decisions).
    """
    now = utcnow()
    # in customer order, both indexes on (run, customer) grow at their ends: 562k rows 7.0 s against
    # 9.8 s in random order (bench/decisions_insert.py)
    order = decisions["customer_id"].reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
    present = [name for name in DECISION_FIELDS if name in decisions.columns]
    stored = {"features"} if features is not None else set()
    absent = {n: None for n in OPTIONAL_DECISION_FIELDS if n not in decisions.columns and n not in stored}
    constants = {**absent, "run_id": run_id, "decided_at": now}
    starts = range(0, len(order), chunk)

    kept = None if features_kept is None else features_kept.to_numpy(dtype=bool)

    def serialised(start: int) -> list[str | None] | None:
        if features is None:
            return None
        rows = order[start : start + chunk]
        if kept is None or kept[rows].all():
            return json_objects(features.iloc[rows], decisions["segment"].iloc[rows])
        texts: list[str | None] = [None] * len(rows)
        among = np.flatnonzero(kept[rows])
        made = json_objects(features.iloc[rows[among]], decisions["segment"].iloc[rows[among]])
        for i, text in zip(among.tolist(), made, strict=True):
            texts[i] = text
        return texts

    # the next chunk's JSON is made while this one is written: sqlite3 and psycopg release the GIL meanwhile
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(serialised, starts[0]) if starts else None
        for i, start in enumerate(starts):
            texts = pending.result() if pending is not None else None
            pending = pool.submit(serialised, starts[i + 1]) if i + 1 < len(starts) else None
            rows = order[start : start + chunk]
            columns = {name: decisions[name].iloc[rows] for name in present}  # converted by insert_columns
            if texts is not None:
                columns["features"] = texts
            insert_columns(conn, Decision.__table__, columns, constants)
    return len(order)


def contact_history(conn: Connection, as_of: dt.datetime, exclude_run_id: int | None = None) -> pd.DataFrame:
    """Per customer, what frequency caps and holdouts need to know of winback's past contact.

    Days since winback last messaged them, messages in the 30 days before `as_of`, and the end of any
    holdout window they are still in (`held_out_until`, with `held_out_by`).

    Counts every campaign (frequency caps are per customer, not per campaign) but not the current run,
    whose own queued rows must not exclude its own customers on a re-run. A message counts from when it
    was sent, or, not sent yet, from when it may be (a follow-up queued a week ahead is contact then).
    """
    as_of = utc(as_of)
    since = as_of - dt.timedelta(days=30)
    contact_at = func.coalesce(OutboxMessage.sent_at, OutboxMessage.not_before)
    stmt = (
        select(
            OutboxMessage.customer_id,
            func.max(contact_at).label("last_contact_at"),
            func.sum(case((contact_at >= since, 1), else_=0)).label("messages_30d"),
        )
        .where(OutboxMessage.status.in_(("queued", "sending", "sent", "unknown")))
        .where(OutboxMessage.created_at <= as_of)
        .group_by(OutboxMessage.customer_id)
    )
    if exclude_run_id is not None:
        stmt = stmt.where(OutboxMessage.run_id != exclude_run_id)
    frame = pd.DataFrame.from_records(
        conn.execute(stmt).fetchall(), columns=["customer_id", "last_contact_at", "messages_30d"]
    )
    last = pd.to_datetime(frame["last_contact_at"], utc=True)
    frame["days_since_contact"] = (pd.Timestamp(as_of) - last).dt.total_seconds() / 86400.0
    history = frame[["customer_id", "days_since_contact", "messages_30d"]]
    held = open_holdouts(conn, as_of, exclude_run_id)
    history = history.merge(held, on="customer_id", how="outer")
    history["messages_30d"] = history["messages_30d"].fillna(0).astype("int64")
    return history


# a run's attribution window, when its campaign's stored config does not say (CampaignConfig's default)
DEFAULT_WINDOW_DAYS = 30


def open_holdouts(conn: Connection, as_of: dt.datetime, exclude_run_id: int | None = None) -> pd.DataFrame:
    """Customers held out by a run whose attribution window is still open at `as_of`.

    Contacting them now would treat the control group while it is being measured: the run's lift would
    count the effect of a later campaign's message as a holdout return. Columns: customer_id,
    held_out_until (the latest such window's end), held_out_by ("<campaign> <as-of date>").
    """
    windows = {
        campaign_id: int((config or {}).get("attribution_days") or DEFAULT_WINDOW_DAYS)
        for campaign_id, config in conn.execute(select(Campaign.id, Campaign.config))
    }
    longest = max(windows.values(), default=DEFAULT_WINDOW_DAYS)
    stmt = (
        select(Decision.customer_id, CampaignRun.campaign_id, CampaignRun.as_of)
        .join(CampaignRun, CampaignRun.id == Decision.run_id)
        .where(
            Decision.action == "holdout",
            CampaignRun.as_of <= as_of,
            CampaignRun.as_of > as_of - dt.timedelta(days=longest),
        )
    )
    if exclude_run_id is not None:
        stmt = stmt.where(Decision.run_id != exclude_run_id)
    frame = pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=["customer_id", "campaign_id", "as_of"])
    columns = ["customer_id", "held_out_until", "held_out_by"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    start = pd.to_datetime(frame["as_of"], utc=True)
    days = frame["campaign_id"].map(windows).fillna(DEFAULT_WINDOW_DAYS)
    frame["held_out_until"] = start + pd.to_timedelta(days, unit="D")
    frame["held_out_by"] = frame["campaign_id"] + " " + start.dt.strftime("%Y-%m-%d")
    frame = frame.loc[frame["held_out_until"] > pd.Timestamp(as_of)]
    latest = frame.sort_values("held_out_until").drop_duplicates("customer_id", keep="last")
    return latest[columns].reset_index(drop=True)


def suppressions(conn: Connection, customer_ids: list[str] | None = None) -> pd.DataFrame:
    """Winback's opt-outs (customer_id, channel): all of them for a campaign, or just these customers'."""
    stmt = select(Suppression.customer_id, Suppression.channel)
    if customer_ids is not None:
        stmt = stmt.where(Suppression.customer_id.in_(customer_ids))
    return pd.DataFrame.from_records(conn.execute(stmt).fetchall(), columns=["customer_id", "channel"])
