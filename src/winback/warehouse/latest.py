"""A customer's latest row: the newest decision about them, and the newest message to them.

What `winback explain` and `winback preview` show. One query shape for both: the customer's rows, newest
first, with a tie-break that makes "newest" one row even when two share a timestamp.
"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, Select, select
from sqlalchemy.sql.elements import ColumnElement

from winback.warehouse.models import CampaignRun, Decision, OutboxMessage


def _latest(
    conn: Connection, stmt: Select, customer: ColumnElement, customer_id: str, *newest_first: ColumnElement
) -> RowMapping | None:
    """The first row of `stmt` for `customer_id`, ordered by `newest_first`; None when there is none."""
    return conn.execute(stmt.where(customer == customer_id).order_by(*newest_first).limit(1)).mappings().first()


def latest_decision(conn: Connection, customer_id: str) -> RowMapping | None:
    """The newest decision about a customer: every wb_decisions column plus its run's `campaign_id` and `as_of`.

    Newest is the run with the latest as-of (the last decided within it on a tie); None when no run
    decided about the customer.
    """
    stmt = select(Decision.__table__, CampaignRun.campaign_id, CampaignRun.as_of).join(
        CampaignRun, CampaignRun.id == Decision.run_id
    )
    return _latest(conn, stmt, Decision.customer_id, customer_id, CampaignRun.as_of.desc(), Decision.id.desc())


def latest_message(conn: Connection, customer_id: str) -> RowMapping | None:
    """The customer's most recently created outbox row (any channel, any status); None when none was queued."""
    stmt = select(OutboxMessage.__table__)
    newest = (OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    return _latest(conn, stmt, OutboxMessage.customer_id, customer_id, *newest)
