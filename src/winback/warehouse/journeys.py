"""Queries a service-recovery journey needs: its run, its steps so far, and whether its customer came back."""

from __future__ import annotations

import datetime as dt

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


class ReturnedCheck:
    """A send-time check for `send_due`: later journey steps stop once the customer ordered again.

    The sender reads the claim's latest orders in its one warehouse query per claim (`warehouse.send_time`,
    asking for `customers(rows)`) and hands them to `stopped`; called on its own, the check reads them itself.
    """

    def __init__(self, engine: Engine, src: SourceTables) -> None:
        self.engine = engine
        self.src = src

    @staticmethod
    def customers(rows: list[dict]) -> set[str]:
        """The customers whose latest order decides: those with a later journey step in the claim."""
        return {r["customer_id"] for r in rows if r["step"] in LATER_STEPS}

    def stopped(self, rows: list[dict], last_order: dict[str, dt.datetime]) -> dict[str, str]:
        """Row id → why it stops, given the customers' latest orders (the journeys' starts read from the state)."""
        later = [r for r in rows if r["step"] in LATER_STEPS]
        if not later:
            return {}
        with self.engine.connect() as conn:
            starts = dict(
                conn.execute(
                    select(CampaignRun.id, CampaignRun.as_of).where(CampaignRun.id.in_({r["run_id"] for r in later}))
                ).all()
            )
        stop = {}
        for r in later:
            ordered = last_order.get(r["customer_id"])
            if ordered is not None and utc(ordered) > utc(starts[r["run_id"]]):
                stop[r["id"]] = "customer returned: journey stopped"
        return stop

    def __call__(self, rows: list[dict]) -> dict[str, str]:
        """The check on its own: the latest orders read here, one query."""
        wanted = self.customers(rows)
        if not wanted:
            return {}
        o, src = self.src.orders, self.src
        cid, at = src.col(o, "customer_id"), src.col(o, "ordered_at")
        with src.reader(self.engine).connect() as conn:
            last = dict(conn.execute(select(cid, func.max(at)).where(cid.in_(wanted)).group_by(cid)).all())
        return self.stopped(rows, last)


def returned_customers(engine: Engine, src: SourceTables) -> ReturnedCheck:
    """A send-time check for `send_due`: later journey steps stop once the customer ordered again."""
    return ReturnedCheck(engine, src)
