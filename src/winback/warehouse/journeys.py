"""Queries a service-recovery journey needs: its run, its steps so far, and whether its customer came back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.orm import Session

from winback.warehouse.models import CampaignRun, OutboxMessage
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow

# a journey's steps after its first (messages.journey plans them): they stop once the customer orders again
LATER_STEPS = ("resolved", "follow_up")


def journey_run(session: Session, campaign_id: str, journey_key: str, started: dt.datetime) -> tuple[CampaignRun, bool]:
    """The run for this ticket, created on first sight; returns (run, created)."""
    run = session.scalars(
        select(CampaignRun).where(CampaignRun.campaign_id == campaign_id, CampaignRun.journey_key == journey_key)
    ).one_or_none()
    if run is not None:
        return run, False
    run = CampaignRun(
        campaign_id=campaign_id,
        as_of=utc(started),
        journey_key=journey_key,
        status="started",
        started_at=utcnow(),
        stats={},
    )
    session.add(run)
    session.flush()
    return run, True


def steps_so_far(conn: Connection, run_id: int) -> dict[str, str]:
    """`step` → `status` of the journey's messages."""
    rows = conn.execute(select(OutboxMessage.step, OutboxMessage.status).where(OutboxMessage.run_id == run_id))
    return dict(rows.all())


def offer_already_sent_or_queued(conn: Connection, run_id: int) -> bool:
    """Whether a message of this journey carrying a code has been sent or is on its way: no second offer."""
    rows = conn.execute(
        select(OutboxMessage.context).where(
            OutboxMessage.run_id == run_id, OutboxMessage.status.in_(("queued", "sending", "sent", "unknown"))
        )
    ).scalars()
    return any((ctx or {}).get("code") for ctx in rows)


def supersede_other_journeys(conn: Connection, campaign_id: str, customer_id: str, keep_run_id: int) -> int:
    """A newer failure re-plans: the older journeys' waiting steps are skipped, with the reason."""
    older = select(CampaignRun.id).where(CampaignRun.campaign_id == campaign_id, CampaignRun.id != keep_run_id)
    result = conn.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.customer_id == customer_id,
            OutboxMessage.status == "queued",
            OutboxMessage.run_id.in_(older),
        )
        .values(status="skipped", last_error="superseded by a newer failure")
    )
    return result.rowcount


def returned_customers(engine: Engine, src: SourceTables) -> Callable[[list[dict]], dict[str, str]]:
    """A send-time check for `send_due`: later journey steps stop once the customer ordered again."""

    def check(rows: list[dict]) -> dict[str, str]:
        later = [r for r in rows if r["step"] in LATER_STEPS]
        if not later:
            return {}
        o = src.orders
        cid, at = src.col(o, "customer_id"), src.col(o, "ordered_at")
        with engine.connect() as conn:  # the runs from winback's state, the orders from the warehouse
            starts = dict(
                conn.execute(
                    select(CampaignRun.id, CampaignRun.as_of).where(CampaignRun.id.in_({r["run_id"] for r in later}))
                ).all()
            )
        with src.reader(engine).connect() as conn:
            last = dict(
                conn.execute(
                    select(cid, func.max(at)).where(cid.in_({r["customer_id"] for r in later})).group_by(cid)
                ).all()
            )
        stop = {}
        for r in later:
            ordered = last.get(r["customer_id"])
            if ordered is not None and utc(ordered) > utc(starts[r["run_id"]]):
                stop[r["id"]] = "customer returned: journey stopped"
        return stop

    return check
