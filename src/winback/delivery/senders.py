"""Many senders on one outbox: what a sender is given (`SenderJob`), what it does (`run_sender`), how many.

Senders need no coordination beyond the outbox and the state database: every claim is exclusive
(`warehouse.outbox.claim_due`; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent senders take different
rows instead of racing for the same ones), and the per-channel rates come from one token bucket per channel
shared by all of them (`delivery.limits.SharedRateLimiter`), so N senders together keep WINBACK_EMAIL_RATE
and WINBACK_SMS_RATE. A sender that dies leaves its claim `sending` under its own host:pid token, which
`reconcile` settles like any crashed sender's.

Where a sender runs is the caller's business, not this module's: the `send_outbox` task of the dispatch
and campaign flows (flows.sending; N of them at once), a flow run of the `dispatch-outbox` deployment on
any worker of the pool, or a plain call. Each builds its channels from its own settings.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from winback.delivery.checks import StopCheck
from winback.delivery.dispatch import Channel, DispatchReport, SendLimits, send_due
from winback.delivery.settle import UnknownPolicy
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.warehouse.models import CampaignRun
from winback.warehouse.runs import RUN_STAGES
from winback.warehouse.source import SourceTables

MIN_MESSAGES_PER_SENDER = 10_000  # below this another sender's start-up costs more than it saves
FOLLOW_POLL_SECONDS = 0.2  # a following sender looks for newly queued rows this often
FOLLOW_IDLE_SECONDS = 120.0  # nothing new this long while the run is not queued whole: its queueing is gone


@dataclass(frozen=True)
class SenderJob:
    """What one sender sends: a run's due messages (every run's when `run_id` is None), as of `now`.

    With `follow_run`, the sender keeps draining the run while it is still being queued (the run's status
    not yet `queued`): a campaign's sending overlaps its queueing. `channel` keeps the sender to that
    channel's messages; `claim_size` rows are claimed at a time (the most a crash can strand). Plain values
    only: a job travels as a Prefect task or flow-run parameter.
    """

    run_id: int | None
    campaign_id: str
    now: dt.datetime
    limits: SendLimits
    follow_run: bool = False
    channel: str | None = None
    claim_size: int = 200


@dataclass(frozen=True)
class SendSetup:
    """What a campaign's sending is handed from the edge: where consent is re-checked, the links, the waits."""

    src: SourceTables
    links: UnsubscribeLinks
    policy: UnknownPolicy

    @classmethod
    def from_settings(cls, settings: Settings, src: SourceTables) -> SendSetup:
        """The edge's `src`, with the unsubscribe links and unknown-row waits the settings configure."""
        return cls(src, UnsubscribeLinks.from_settings(settings), UnknownPolicy.from_settings(settings))


def senders_for(due_messages: int, limits: SendLimits) -> int:
    """How many concurrent senders a send of `due_messages` is worth: one per 10,000, at most `limits.senders`."""
    return max(1, min(limits.senders, due_messages // MIN_MESSAGES_PER_SENDER))


def run_sender(
    engine: Engine,
    channels: dict[str, Channel],
    job: SenderJob,
    *,
    source: SourceTables | None,
    links: UnsubscribeLinks,
    stop_check: StopCheck | None = None,
) -> DispatchReport:
    """Send the job's due messages until none is left (while the run is queued, see SenderJob); the counts."""

    def drain() -> DispatchReport:
        return send_due(
            engine, channels, run_id=job.run_id, campaign_id=job.campaign_id, now=job.now, limits=job.limits,
            stop_check=stop_check, source=source, links=links, channel=job.channel, claim_size=job.claim_size,
        )  # fmt: skip

    if not job.follow_run or job.run_id is None:
        return drain()
    report = DispatchReport()
    idle_since = time.monotonic()
    while True:
        # asked before the pass: a pass that starts after the queueing ended sees every row it queued
        last_pass = _queued_whole(engine, job.run_id) or time.monotonic() - idle_since > FOLLOW_IDLE_SECONDS
        counts = drain().as_dict()
        report.merge(counts)
        if last_pass:
            return report
        if counts:
            idle_since = time.monotonic()
        time.sleep(FOLLOW_POLL_SECONDS)


def _queued_whole(engine: Engine, run_id: int) -> bool:
    """Whether the run is fully queued (or gone), so nothing more will come."""
    with engine.connect() as conn:
        status = conn.execute(select(CampaignRun.status).where(CampaignRun.id == run_id)).scalar_one_or_none()
    return status is None or RUN_STAGES.index(status) >= RUN_STAGES.index("queued")
