"""winback's own opt-out list: written by webhooks and provider answers, read at selection and at send."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, func, insert, select

from winback.warehouse.models import OutboxMessage, Suppression


def suppress(conn: Connection, customer_id: str, channel: str, reason: str, source: str, at: dt.datetime) -> bool:
    """Record an opt-out (idempotent); returns True when it is new."""
    exists = conn.execute(
        select(Suppression.id).where(Suppression.customer_id == customer_id, Suppression.channel == channel)
    ).first()
    if exists:
        return False
    conn.execute(
        insert(Suppression).values(
            customer_id=customer_id, channel=channel, reason=reason, source=source, created_at=at
        )
    )
    return True


def lift_suppression(conn: Connection, customer_id: str, channel: str) -> bool:
    """An opt back in (SMS START): returns True when there was an opt-out to lift."""
    result = conn.execute(
        delete(Suppression).where(Suppression.customer_id == customer_id, Suppression.channel == channel)
    )
    return result.rowcount > 0


def suppress_address(
    conn: Connection, customer_id: str, channel: str, reason: str, source: str, at: dt.datetime
) -> int:
    """Opt out every customer winback has written to at this customer's address on `channel`; how many new.

    An email address is a person's, not a customer record's: two records sharing it (a duplicate account,
    a family) must not keep receiving what its owner unsubscribed from or what bounced. The addresses are
    the ones messages went to (case and surrounding spaces aside); a customer never messaged is opted out
    alone.
    """
    address = func.lower(func.trim(OutboxMessage.to_address))
    theirs = (
        select(address)
        .where(OutboxMessage.customer_id == customer_id, OutboxMessage.channel == channel)
        .where(OutboxMessage.to_address != "")
        .distinct()
    )
    sharing = select(OutboxMessage.customer_id).where(OutboxMessage.channel == channel, address.in_(theirs)).distinct()
    customers = {customer_id, *conn.execute(sharing).scalars()}
    return sum(suppress(conn, c, channel, reason, source, at) for c in sorted(customers))
