"""The campaign's stages as plain functions: what the Prefect flow orchestrates, testable without it.

Each stage reads what it needs from the warehouse and writes its result back, so a run can stop after
any stage and resume: decisions are made once per (campaign, as-of), offers and outbox rows are only
added where missing, and sending picks up whatever is still queued.

A stage that is one unit of work (`start_run`, `find_run`, `issue_run_offers`) works in the
caller's transaction on winback's state; queueing and sending take the state engine, since they commit in
steps by design (see their docstrings). The source tables are read through `src.reader(...)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, or_, select
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.delivery.dispatch import Channel, DispatchReport, SendLimits, reconcile, send_time_source
from winback.delivery.senders import SenderJob, SendSetup, run_sender, senders_for
from winback.messages.compose import check_templates, plan_columns, rows_of
from winback.offers.issue import issue_offers, offer_amounts
from winback.offers.policy import CompensationPolicy
from winback.stages import deciding, quality
from winback.stages.preview import PreviewTally
from winback.stages.reads import context_batch, summarise_batch  # noqa: F401 (app.demo_history reads them here)
from winback.warehouse import outbox, quarantine, queries, runs
from winback.warehouse.frames import frame_from_rows, raw_rows
from winback.warehouse.models import CampaignRun, Decision
from winback.warehouse.quality import Findings, QualityRules
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc

# contacted customers per page when offers are issued: ~50 MiB of rows and codes at a time
OFFER_PAGE = 100_000
# how a flow starts `count` more senders on a job; what it returns waits for them and sums their reports
StartSenders = Callable[[SenderJob, int], Callable[[], DispatchReport]]
# how a run is queued while sent (queue_and_send_run): given what starts the other senders; how many it queued
QueueRun = Callable[[Callable[[], None]], int]


@dataclass(frozen=True)
class RunHandle:
    """A campaign run as the stages pass it along: its id, status when read, and as-of date."""

    run_id: int
    status: str
    as_of: dt.datetime


def start_run(session: Session, config: CampaignConfig, as_of: dt.datetime) -> RunHandle:
    """The run for this campaign and date, started if new: a crashed or repeated run resumes where it stopped.

    Written in the caller's transaction (`session`, begun and committed by the caller).
    """
    runs.ensure_campaign(session, config.campaign_id, "winback", config.model_dump(mode="json"))
    run = runs.get_or_start_run(session, config.campaign_id, as_of)
    session.flush()
    return RunHandle(run.id, run.status, utc(run.as_of))


def find_run(conn: Connection, config: CampaignConfig, as_of: dt.datetime) -> RunHandle | None:
    """The run for this campaign and date if one was started, without starting one (nothing is written).

    Read on the caller's connection.
    """
    row = conn.execute(
        select(CampaignRun.id, CampaignRun.status, CampaignRun.as_of).where(
            CampaignRun.campaign_id == config.campaign_id,
            CampaignRun.as_of == utc(as_of),
            CampaignRun.journey_key == "",
        )
    ).first()
    return None if row is None else RunHandle(row.id, row.status, utc(row.as_of))


def check_source(
    engine: Engine, src: SourceTables, as_of: dt.datetime, now: dt.datetime, config: CampaignConfig
) -> QualityRules:
    """The source mapping checked whole, and the run's data-quality rules.

    A ConfigError names every missing table and column; the rules are what every read of the source goes
    by (see stages.quality).
    """
    return quality.source_rules(engine, src, as_of, now, config)


@contextmanager
def transaction(engine: Engine) -> Iterator[tuple[Session, Connection]]:
    """One transaction for ORM and Core work alike: commits on success, rolls back on error."""
    with Session(engine) as session, session.begin():
        yield session, session.connection()


def preview_run(
    engine: Engine,
    as_of: dt.datetime,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    gated: quality.GatedReads | None = None,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """What a run for `as_of` would decide and spend, written nowhere: a dry run.

    Nothing may be left behind: a stored run would be resumed by the real run for the same date (deciding
    nothing anew), and queued messages would be sent by the hourly dispatch and count against cooldowns.
    The data-quality gate runs as in a real run; its quarantine is summarised, not stored.
    """
    findings = gated.findings if gated is not None else Findings()
    with engine.connect() as conn:
        decisions, lifts, uplift = _decisions(
            conn, src.reader(engine), as_of, None, scored, failures, reach, config, policy, findings, src=src
        )
    tally = PreviewTally()
    tally.add(with_gate_skips(decisions, gated.skipped if gated is not None else None))
    return preview_summary(tally, config, lifts, uplift, findings)


def preview_summary(
    tally: PreviewTally, config: CampaignConfig, lifts: dict[str, float], uplift: dict[str, Any], findings: Findings
) -> dict[str, Any]:
    """The dry run's report: what the tally counted, the budget, the lifts and model used, the quarantine."""
    return {
        **tally.summary(),
        "budget": config.budget,
        "lift_used": {k: round(v, 4) for k, v in lifts.items()},
        "uplift": uplift,
        "quality": quality.quality_summary(quality.masked_findings(findings), None),
    }


def with_gate_skips(decisions: pd.DataFrame, skipped: pd.DataFrame | None) -> pd.DataFrame:
    """The decisions plus a skip row for each customer the data-quality gate set aside whole (`skipped`)."""
    if skipped is None or not len(skipped):
        return decisions
    return pd.concat([decisions, quality.skip_decisions(skipped, list(decisions.columns))], ignore_index=True)


def _decisions(
    state: Connection,
    warehouse: Engine,
    as_of: dt.datetime,
    run_id: int | None,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    findings: Findings | None = None,
    *,
    src: SourceTables,
    with_uplift: bool = True,
) -> tuple[pd.DataFrame, dict[str, float], dict[str, Any]]:
    """Every candidate's decision, with the lifts measured so far and the uplift model's summary.

    The run decided as one part (stages.deciding); what is set aside goes to `findings`.
    """
    findings = findings if findings is not None else Findings()
    context = deciding.decision_context(state, as_of, run_id, config, policy, with_uplift=with_uplift)
    with warehouse.connect() as conn:
        decisions = deciding.decide_whole(conn, src, context, scored, failures, reach, findings)
    return decisions, context.lifts, context.uplift_summary


def decisions_in_one_part(
    engine: Engine,
    run: RunHandle,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    findings: Findings,
    *,
    src: SourceTables,
) -> tuple[pd.DataFrame, dict[str, float], dict[str, Any]]:
    """The run's decisions made in one part, with the lifts and the uplift model's summary; stored nowhere."""
    with engine.connect() as conn:
        return _decisions(conn, src.reader(engine), run.as_of, run.run_id, scored, failures, reach, config, policy,
                          findings, src=src)  # fmt: skip


def decisions_for(
    engine: Engine,
    as_of: dt.datetime,
    run_id: int | None,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    *,
    with_uplift: bool = True,
    src: SourceTables,
) -> pd.DataFrame:
    """What a run would decide, stored nowhere; ``with_uplift=False``: on the per-offer-kind lift alone."""
    frames = (scored, failures, reach)
    with engine.connect() as conn:
        return _decisions(
            conn, src.reader(engine), as_of, run_id, *frames, config, policy, src=src, with_uplift=with_uplift
        )[0]


def issue_run_offers(session: Session, run: RunHandle, config: CampaignConfig) -> int:
    """Issue an offer code to each contacted customer of the run and mark it offered; how many were issued.

    Written in the caller's transaction (`session`, begun and committed by the caller): the codes and the
    run's move to `offered` commit together.
    """
    conn = session.connection()
    # only the contacts with compensation: issue_offers leaves out kind "none", the message alone, which most
    # contacts are (297,000 of 322,000 on the 1M demo shop: reading them was half of this stage)
    compensated = or_(Decision.offer_kind.is_(None), Decision.offer_kind != "none")
    stmt = (
        select(Decision.customer_id, Decision.offer_kind, Decision.offer_value, Decision.offer_cost)
        .where(Decision.run_id == run.run_id, Decision.action == "contact", compensated)
        .order_by(Decision.customer_id)
    )
    issued, after = 0, ""  # keyset pages on the customer id: at 10M customers, millions of codes never at once
    while rows := raw_rows(conn, stmt.where(Decision.customer_id > after).limit(OFFER_PAGE)):
        page, after = (after, rows[-1][0]), rows[-1][0]
        contacts = frame_from_rows(
            rows,
            ["customer_id", "offer_kind", "offer_value", "offer_cost"],
            {"offer_value": "float64", "offer_cost": "float64"},
        )
        issued += issue_offers(
            conn, run.run_id, run.as_of, contacts, config.currency, config.offer_expiry_days, page=page
        )
    runs.advance(session, run.run_id, "offered", offers_issued=issued)
    session.flush()
    return issued


def queue_run_messages(
    engine: Engine, src: SourceTables, run: RunHandle, config: CampaignConfig, now: dt.datetime
) -> int:
    """Enqueue a message for each contacted customer that has none yet (rendered when it is sent).

    Works in partitions of customers, each committed on its own, so memory stays flat at any size and a
    crash keeps what was queued. That is why it takes the state `engine` rather than the caller's
    transaction: each partition must commit before the next is read, since a large run's other senders send
    every partition as soon as it is committed (see queue_and_send_run); the run's move to `queued` is the
    last, separate transaction.
    """
    findings = Findings()
    added = queue_contacts(engine, src, run, config, now, findings)
    with transaction(engine) as (session, conn):
        quarantine.add(conn, run.run_id, quality.masked_findings(findings))
        runs.advance(session, run.run_id, "queued", messages_queued=added)
        session.flush()
    return added


def queue_contacts(
    engine: Engine,
    src: SourceTables,
    run: RunHandle,
    config: CampaignConfig,
    now: dt.datetime,
    findings: Findings,
    after_decision: int | None = None,
    *,
    templates_checked: bool = False,
) -> int:
    """Enqueue the contacted customers with no message yet (decided after `after_decision`, given one); how many.

    Each page commits on its own; names set aside go to `findings`. The templates are checked on the first
    page unless `templates_checked` (by an earlier call of the same run that queued). See queue_run_messages.
    """
    added = 0
    checked = templates_checked
    with engine.connect() as reader, src.reader(engine).connect() as warehouse:
        pages = queries.contacts_to_queue(reader, src, run.run_id, warehouse=warehouse, after_decision=after_decision)
        for frame in pages:
            # one message per customer even should the customers table have gained a copy since the decision
            frame = quality.screen_names(frame.drop_duplicates("customer_id"), src, findings)
            frame["unresolved"] = frame["resolved_at"].isna() | (frame["resolved_at"] > pd.Timestamp(run.as_of))
            frame["offer_amount"] = offer_amounts(frame["offer_kind"], frame["offer_value"], frame["decided_cost"])
            columns = plan_columns(
                frame,
                run.run_id,
                now,
                quiet_start_hour=config.contact.quiet_start_hour,
                quiet_end_hour=config.contact.quiet_end_hour,
                variants=config.variants,
            )
            if not checked:
                check_templates(rows_of(columns))  # a broken template stops the run before anything is queued
                checked = True
            with engine.begin() as conn:
                added += outbox.enqueue_columns(conn, columns)
    return added


def send_run(
    engine: Engine,
    run: RunHandle,
    channels: dict[str, Channel],
    campaign_id: str,
    now: dt.datetime,
    limits: SendLimits = SendLimits(),  # noqa: B008 (frozen)
    start_senders: StartSenders | None = None,
    *,
    setup: SendSetup,
) -> dict[str, int]:
    """Settle anything a crash left mid-send, then send every due message of the run.

    Given `start_senders` (the flow's way to start more senders, each building its channels from the
    settings `channels` came from), a large send spreads over several senders; without it, one sends all.
    `setup` is what the edge read for sending (`SendSetup.from_settings`).

    It takes the state `engine` rather than the caller's transaction because sending commits per row by
    design (issue #17): each row's claim and start are committed before its provider call, and its outcome
    after, so a crash between the two is found and settled by the next reconcile instead of sending twice.
    No caller transaction could hold that protocol; the run's move to `sent` is its own last transaction.
    """
    senders = 1
    if start_senders is not None:
        with engine.connect() as conn:
            senders = senders_for(outbox.due_count(conn, now, run.run_id), limits)
    settled = reconcile(engine, channels, run.run_id, policy=setup.policy)
    job = SenderJob(run.run_id, campaign_id, now, limits)
    join = start_senders(job, senders - 1) if start_senders is not None and senders > 1 else None
    try:
        report = run_sender(engine, channels, job, source=send_time_source(engine, setup.src), links=setup.links)
    finally:  # the other senders are waited for, whatever this one did
        others = join() if join is not None else DispatchReport()
    report.merge(others.as_dict())
    with transaction(engine) as (session, _conn):
        return _sent(session, run, report, settled)


def queue_and_send_run(
    engine: Engine,
    src: SourceTables,
    run: RunHandle,
    config: CampaignConfig,
    now: dt.datetime,
    channels: dict[str, Channel],
    limits: SendLimits = SendLimits(),  # noqa: B008 (frozen)
    start_senders: StartSenders | None = None,
    *,
    setup: SendSetup,
    queue: QueueRun | None = None,
    contacts: int | None = None,
) -> tuple[int, dict[str, int]]:
    """`queue_run_messages` then `send_run`, the sending overlapping the queueing in other senders.

    Queueing renders nothing and runs on one core; for a large run (and given `start_senders`, see
    send_run), the other senders follow the run: they send each partition as soon as it is committed, and
    this one joins them on what is left. Every row is still committed before it is claimed, so the
    guarantees are send_run's.

    `queue` (default: queue_run_messages) queues the run and moves it to `queued`, calling the function
    it is given once the other senders are wanted: before queueing, or (stages.decide_and_send) once its
    first messages are queued. `contacts` is how many messages it may queue (default: the run's contacts decided).
    """
    queue = queue if queue is not None else _queue_whole(engine, src, run, config, now)
    senders = 1
    if start_senders is not None:
        if contacts is None:
            with engine.connect() as conn:
                contacts = runs.contacts_decided(conn, run.run_id)
        senders = senders_for(contacts, limits)
    if senders <= 1:
        queued = queue(lambda: None)
        return queued, send_run(engine, run, channels, config.campaign_id, now, limits, setup=setup)
    assert start_senders is not None
    settled = reconcile(engine, channels, run.run_id, policy=setup.policy)
    job = SenderJob(run.run_id, config.campaign_id, now, limits)
    joins: list[Callable[[], DispatchReport]] = []

    def start_followers() -> None:
        if not joins:
            joins.append(start_senders(replace(job, follow_run=True), senders - 1))

    try:
        queued = queue(start_followers)
        report = run_sender(engine, channels, job, source=send_time_source(engine, setup.src), links=setup.links)
    finally:  # after a failed queueing, the followers stop once idle (delivery.senders.FOLLOW_IDLE_SECONDS)
        others = joins[0]() if joins else DispatchReport()
    report.merge(others.as_dict())
    with transaction(engine) as (session, _conn):
        return queued, _sent(session, run, report, settled)


def _queue_whole(
    engine: Engine, src: SourceTables, run: RunHandle, config: CampaignConfig, now: dt.datetime
) -> QueueRun:
    """The run's messages queued by queue_run_messages, the other senders started first."""

    def queue(start_followers: Callable[[], None]) -> int:
        start_followers()
        return queue_run_messages(engine, src, run, config, now)

    return queue


def _sent(session: Session, run: RunHandle, report: DispatchReport, settled: dict[str, int]) -> dict[str, int]:
    """Record the send's outcome on the run, in the caller's transaction; the report as the flow returns it."""
    counts = outbox.status_counts(session.connection(), run.run_id)
    runs.advance(session, run.run_id, "sent", outbox=counts, reconciled=settled)
    session.flush()
    return {**report.as_dict(), **{f"reconciled_{k}": v for k, v in settled.items()}}
