"""The outbox rows a crash left behind: `unknown` rows, how each is settled, and the history of every move.

A plain send moves a row through `warehouse.outbox`; everything here is the exception, so each move is
written to `wb_outbox_history` with who made it and why (reconcile, a provider lookup, an operator).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from winback.warehouse.models import CampaignRun, OutboxHistory, OutboxMessage
from winback.warehouse.timeutil import utc


def _moved(conn: Connection, ids: Iterable[str], where: Any, values: dict[str, Any]) -> list[str]:
    """One UPDATE … RETURNING over these ids (only those `where` still holds for): the ids it moved."""
    ids = list(ids)
    if not ids:
        return []
    table = OutboxMessage.__table__
    result = conn.execute(update(table).where(table.c.id.in_(ids), where).values(**values).returning(table.c.id))
    return list(result.scalars())


def add_history(
    conn: Connection, ids: Iterable[str], at: dt.datetime, moved: tuple[str, str], actor: str, reason: str
) -> None:
    """One `wb_outbox_history` entry per id: `moved` is (from status, to status)."""
    entries = [
        {"outbox_id": mid, "at": at, "from_status": moved[0], "to_status": moved[1], "actor": actor, "reason": reason}
        for mid in ids
    ]
    if entries:
        conn.execute(insert(OutboxHistory.__table__), entries)


def requeue_unstarted(conn: Connection, ids: Iterable[str], at: dt.datetime, reason: str) -> list[str]:
    """`sending` → `queued` for rows a gone sender claimed but never started: they never left, and were no attempt."""
    table = OutboxMessage.__table__
    where = (func.coalesce(table.c.status, "") == "sending") & table.c.started_at.is_(None)
    moved = _moved(conn, ids, where, {"status": "queued", "attempts": table.c.attempts - 1})
    add_history(conn, moved, at, ("sending", "queued"), "reconcile", reason)
    return moved


def mark_unknown(conn: Connection, ids: Iterable[str], at: dt.datetime, reason: str) -> list[str]:
    """`sending` → `unknown` for rows a gone sender had started: the provider may or may not have them."""
    table = OutboxMessage.__table__
    sending = func.coalesce(table.c.status, "") == "sending"
    moved = _moved(conn, ids, sending, {"status": "unknown", "last_error": reason})
    add_history(conn, moved, at, ("sending", "unknown"), "reconcile", reason)
    return moved


def settle_unknown_as_sent(
    conn: Connection, mid: str, provider: str, provider_message_id: str, at: dt.datetime, actor: str, reason: str
) -> bool:
    """`unknown` → `sent`: the provider has the message (found by a lookup); its id is recorded."""
    values = {"status": "sent", "provider": provider, "provider_message_id": provider_message_id, "sent_at": at,
              "last_error": None}  # fmt: skip
    moved = _moved(conn, [mid], OutboxMessage.__table__.c.status == "unknown", values)
    add_history(conn, moved, at, ("unknown", "sent"), actor, reason)
    return bool(moved)


def requeue_unknown(conn: Connection, ids: Iterable[str], at: dt.datetime, actor: str, reason: str) -> list[str]:
    """`unknown` → `queued`: someone (a lookup that found nothing, an operator) decided it never left.

    Its `not_before` is kept: it was due when it was claimed, so it is due again at once.
    """
    values = {"status": "queued", "last_error": reason}
    moved = _moved(conn, ids, OutboxMessage.__table__.c.status == "unknown", values)
    add_history(conn, moved, at, ("unknown", "queued"), actor, reason)
    return moved


def requeued_before(conn: Connection, ids: Iterable[str], actor: str) -> set[str]:
    """Which of these rows `actor` has already moved from unknown back to the queue (the history says so)."""
    ids = list(ids)
    if not ids:
        return set()
    h = OutboxHistory
    stmt = select(h.outbox_id).where(h.outbox_id.in_(ids), h.actor == actor, h.from_status == "unknown",
                                     h.to_status == "queued")  # fmt: skip
    return set(conn.execute(stmt).scalars())


def history(conn: Connection, ids: Iterable[str]) -> list[dict[str, Any]]:
    """The history entries of these rows, oldest first."""
    h = OutboxHistory.__table__
    stmt = select(h).where(h.c.outbox_id.in_(list(ids))).order_by(h.c.at, h.c.id)
    return [dict(r) for r in conn.execute(stmt).mappings()]


UNKNOWN_COLUMNS = ("id", "run_id", "customer_id", "channel", "to_address", "context", "body_text", "last_error")


def unknown_rows(
    conn: Connection,
    run_id: int | None = None,
    *,
    since_before: dt.datetime | None = None,
    channel: str | None = None,
) -> list[dict[str, Any]]:
    """`unknown` rows, oldest first, for an operator or a lookup to settle.

    Each with its campaign and `since` (its call's start, else its claim or creation time); only those
    unknown since before `since_before` when given.
    """
    table = OutboxMessage.__table__
    since = func.coalesce(table.c.started_at, table.c.claimed_at, table.c.created_at)
    stmt = (
        select(*(table.c[name] for name in UNKNOWN_COLUMNS), CampaignRun.campaign_id, since.label("since"))
        .join(CampaignRun, CampaignRun.id == table.c.run_id)
        .where(table.c.status == "unknown")
        .order_by(since, table.c.id)
    )
    if run_id is not None:
        stmt = stmt.where(table.c.run_id == run_id)
    if since_before is not None:
        stmt = stmt.where(since <= since_before)
    if channel is not None:
        stmt = stmt.where(table.c.channel == channel)
    return [{**row, "since": utc(row["since"])} for row in map(dict, conn.execute(stmt).mappings())]
