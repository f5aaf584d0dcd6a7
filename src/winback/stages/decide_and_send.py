"""A new campaign run decided, offered, queued and sent, the sending overlapping the storing.

Once the run-wide steps are done (the fit, the holdout and the budget walk; see stages.deciding), a run's
decisions are stored in steps of at most `STEP` customers: each part (a partitioned run's partition as it
is finished, or the whole of a run decided in one process) cut in slices. Each step commits its decisions
with their offer codes in one transaction, then queues its messages; the other senders start once the first
step is queued and send every step as soon as it is queued (stages.campaign.queue_and_send_run), while the
next is stored. The run moves to `decided`, `offered` and `queued` together in the last transaction.

Deciding used one core while the second waited for the first message: storing in steps overlaps the two
(1M customers, SQLite for both: docs/benchmarks.md). The steps are small because on SQLite a step's
transaction holds the one write lock that the senders' claims and outcomes wait for: with steps of 125,000
customers (~2.5 s of storing each) the sender stalled in every step (a CPU timeline; its waits for the lock
were not measured themselves), and with 25,000 the run took 1.4-9.1 s less (DuckDB warehouse, four pairs:
docs/benchmarks.md).

A crash part-way leaves some steps stored whole, each with its codes, and the run `started`. The re-run
reads and decides the run again, stores the customers not decided yet (the ones stored keep their
decisions and codes), then queues whatever was decided and not queued. On the same data the re-run's
decisions are those of the first attempt, so the stored steps and the new ones make the decisions of an
uninterrupted run. Nothing is sent twice: one message per decided contact (the outbox's unique key), and
sending's own protocol (stages.campaign.send_run).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from winback.config import CampaignConfig
from winback.delivery.dispatch import Channel, SendLimits
from winback.delivery.senders import SendSetup
from winback.offers.issue import issue_offers
from winback.offers.policy import CompensationPolicy
from winback.segments.decision_features import features_kept, stored_features
from winback.segments.scoring import Scorer
from winback.stages import deciding, memory, quality
from winback.stages.campaign import (
    RunHandle,
    StartSenders,
    decisions_in_one_part,
    queue_and_send_run,
    queue_contacts,
    transaction,
    with_gate_skips,
)
from winback.stages.gathered import Gathered
from winback.stages.partitioned import decide_partitions
from winback.warehouse import quarantine, runs
from winback.warehouse.models import Decision, Offer
from winback.warehouse.quality import Findings
from winback.warehouse.source import SourceTables

# customers per step stored, one transaction each (see the module); 10,000 was level with it, four pairs
STEP = 25_000


@dataclass(frozen=True)
class Sending:
    """How a run's messages leave: its send time, channels, limits, the edge's set-up, and how senders start."""

    now: dt.datetime
    channels: dict[str, Channel]
    limits: SendLimits
    start_senders: StartSenders | None
    setup: SendSetup
    contacts: int  # at most how many messages the run queues (its customers): what senders are sized by


@dataclass
class Decided:
    """What storing the steps counted: decisions by action, and the names set aside when queueing."""

    counts: dict[str, int] = field(default_factory=dict)
    named: Findings = field(default_factory=Findings)


# what a run decides, in steps, with the lifts and the uplift model's summary it decided with
Steps = Callable[[], tuple[Iterable[pd.DataFrame], dict[str, float], dict[str, Any]]]


def decide_and_send_run(
    engine: Engine,
    run: RunHandle,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    config: CampaignConfig,
    policy: CompensationPolicy,
    model: dict[str, Any],
    gated: quality.GatedReads | None,
    sending: Sending,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """A run read in one process (`frames`: scored, failures, reach) decided, then stored in steps while sent."""
    findings = gated.findings if gated is not None else Findings()

    def steps() -> tuple[Iterator[pd.DataFrame], dict[str, float], dict[str, Any]]:
        decisions, lifts, uplift = decisions_in_one_part(engine, run, *frames, config, policy, findings, src=src)
        decisions = with_gate_skips(decisions, gated.skipped if gated is not None else None)
        memory.release_free_memory()  # what deciding let go of, before the inserts' chunks come on top
        return iter([decisions]), lifts, uplift

    return _store_and_send(engine, run, steps, findings, model, config, sending, src=src)


def decide_and_send_partitioned_run(
    engine: Engine,
    run: RunHandle,
    gathered: Gathered,
    scorer: Scorer,
    config: CampaignConfig,
    policy: CompensationPolicy,
    model: dict[str, Any],
    sending: Sending,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """A partitioned run (stages.partitioned) decided, then stored partition by partition while sent."""
    findings = gathered.all_findings()

    def steps() -> tuple[Iterator[pd.DataFrame], dict[str, float], dict[str, Any]]:
        with engine.connect() as conn:
            context = deciding.decision_context(
                conn, run.as_of, run.run_id, config, policy, typical_gap=scorer.typical_gap
            )
        parts = decide_partitions(src.reader(engine), src, context, scorer, gathered, findings)
        return parts, context.lifts, context.uplift_summary

    return _store_and_send(engine, run, steps, findings, model, config, sending, src=src)


def _store_and_send(
    engine: Engine,
    run: RunHandle,
    steps: Steps,
    findings: Findings,
    model: dict[str, Any],
    config: CampaignConfig,
    sending: Sending,
    *,
    src: SourceTables,
) -> dict[str, Any]:
    """`steps` made and stored while the other senders send (see the module): what the flow reports."""
    outcome: dict[str, Any] = {}

    def queue(start_followers: Callable[[], None]) -> int:
        parts, lifts, uplift = steps()
        decided, issued, queued = store_offer_and_queue(
            engine, run, parts, findings, config, sending.now, start_followers, src=src
        )
        with transaction(engine) as (session, conn):
            set_aside = quality.masked_findings(findings)
            quarantine.store(conn, run.run_id, set_aside)
            quarantine.add(conn, run.run_id, quality.masked_findings(decided.named))
            stats = {"model": model, "lift_used": {k: round(v, 4) for k, v in lifts.items()}, "uplift": uplift}
            runs.advance(session, run.run_id, "decided", decisions=decided.counts, quarantined=len(set_aside), **stats)
            runs.advance(session, run.run_id, "offered", offers_issued=issued)
            runs.advance(session, run.run_id, "queued", messages_queued=queued)
            session.flush()
        outcome["decisions"], outcome["offers_issued"] = decided.counts, issued
        return queued

    outcome["messages_queued"], outcome["sending"] = queue_and_send_run(
        engine, src, run, config, sending.now, sending.channels, sending.limits, sending.start_senders,
        setup=sending.setup, queue=queue, contacts=sending.contacts,
    )  # fmt: skip
    return outcome


def store_offer_and_queue(
    engine: Engine,
    run: RunHandle,
    parts: Iterable[pd.DataFrame],
    findings: Findings,
    config: CampaignConfig,
    now: dt.datetime,
    start_followers: Callable[[], None] = lambda: None,
    *,
    src: SourceTables,
) -> tuple[Decided, int, int]:
    """Each step's decisions and codes committed together, then its messages queued: counts, codes, messages.

    Only customers the run has not decided yet are stored (see the module); `start_followers` is called once
    the first messages are queued. Returns the counts of every part's decisions, the run's codes issued in
    all, and the messages this call queued. `findings` is deciding's, read by the caller once every part is made.
    """
    with engine.connect() as conn:
        stored = set(conn.execute(select(Decision.customer_id).where(Decision.run_id == run.run_id)).scalars())
    decided, counts = Decided(), Counter[str]()
    queued = 0
    for decisions in _steps(parts):
        counts.update({str(k): int(v) for k, v in decisions["action"].value_counts().items()})
        fresh = decisions.loc[~decisions["customer_id"].isin(stored)] if stored else decisions
        if fresh.empty:
            continue
        with transaction(engine) as (_session, conn):
            # the ids this part's decisions get: higher than any before (one writer of this run's decisions)
            before = conn.execute(select(func.max(Decision.id))).scalar_one_or_none() or 0
            runs.record_decisions(conn, run.run_id, fresh, stored_features(fresh), features_kept=features_kept(fresh))
            offers = fresh.loc[fresh["action"] == "contact", ["customer_id", "offer_kind", "offer_value", "offer_cost"]]
            issue_offers(conn, run.run_id, run.as_of, offers, config.currency, config.offer_expiry_days, fresh=True)
        # the templates are checked once, before the run's first message (rows_of is 0.3 s a page)
        queued += queue_contacts(
            engine, src, run, config, now, decided.named, after_decision=before, templates_checked=queued > 0
        )
        if queued:
            start_followers()
    if stored:  # what an earlier attempt decided and had not queued
        queued += queue_contacts(engine, src, run, config, now, decided.named, templates_checked=queued > 0)
        if queued:
            start_followers()
    decided.counts = dict(counts)
    with engine.connect() as conn:
        issued = int(conn.execute(select(func.count()).where(Offer.run_id == run.run_id)).scalar_one())
    return decided, issued, queued


def _steps(parts: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each part's decisions in slices of at most `STEP` rows, made as they are asked for."""
    for part in parts:
        yield from (part.iloc[i : i + STEP] for i in range(0, len(part), STEP))
