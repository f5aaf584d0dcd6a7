"""winback's own opt-out list: written by webhooks and provider answers, read at selection and at send."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, insert, select

from warehouse.models import Suppression


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
