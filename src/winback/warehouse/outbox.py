"""The outbox: every message is a row committed before the provider is called.

    queued ──claim_due──▶ sending ──start──▶ (call) ──▶ sent | failed | skipped | queued (retryable, later not_before)
                             │    └──release──▶ queued (quiet hours at the recipient now: not an attempt)
                      crash ─┘ ──reconcile──▶ sent (the sink's journal has it) | queued (it never left, or its
                                              call never started) | unknown (started, answer lost: never resent
                                              automatically; a provider lookup, an event or an operator settles it)

`claim_due` flips queued → sending in its own committed transaction, so two senders never take the same
row and a crash leaves evidence. `start` stamps `started_at` on the rows whose provider call is next,
committed just before those calls: after a crash only they can be `unknown`, at most the calls in flight.
Moves outside a plain send (a crash settled, a lookup's finding, an operator's re-queue) live in
`warehouse.outbox_unknown`, which writes each to `wb_outbox_history`. See docs/delivery.md for the policy
on `unknown`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import socket
import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, Text, bindparam, func, select, type_coerce, update

from winback.warehouse.bulk import insert_columns, update_by_key
from winback.warehouse.models import OutboxMessage
from winback.warehouse.timeutil import utc, utcnow

ACTIVE = ("queued", "sending")


def message_id(run_id: int, customer_id: str, step: str) -> str:
    """Deterministic: the same run, customer and step always name the same outbox row."""
    return hashlib.sha256(f"{run_id}:{customer_id}:{step}".encode()).hexdigest()[:32]


def enqueue(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert rows whose id is not there yet; returns how many were new. Existing rows are never touched.

    Every row carries the same keys, the columns it sets (`enqueue_columns` for rows already in columns).
    """
    if not rows:
        return 0
    return enqueue_columns(conn, {name: [r[name] for r in rows] for name in rows[0]})


def enqueue_columns(conn: Connection, columns: dict[str, list[Any]]) -> int:
    """`enqueue` for rows given as columns (equal-length lists, one of them `id`); how many were new.

    One executemany of tuples (warehouse.bulk) that skips ids already present, rather than a lookup of the
    ids first. A context may be JSON text already (`messages.compose.plan_columns`): stored as it is.
    """
    ids = columns["id"]
    if not ids:
        return 0
    # ids are hashes: in order, the inserts touch neighbouring pages
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return insert_columns(
        conn, OutboxMessage.__table__, {name: [values[i] for i in order] for name, values in columns.items()},
        skip_existing="id",
    )  # fmt: skip


def due_count(conn: Connection, now: dt.datetime, run_id: int | None = None) -> int:
    """How many queued messages are due by `now` (of one run when given): sizes the sender pool."""
    stmt = select(func.count()).where(OutboxMessage.status == "queued", OutboxMessage.not_before <= now)
    if run_id is not None:
        stmt = stmt.where(OutboxMessage.run_id == run_id)
    return int(conn.execute(stmt).scalar_one())


# what a sender needs of a claimed row: not what it will write (subject, text, times), which SQLite would
# parse back from text for every row
CLAIMED_COLUMNS = (
    "id", "run_id", "customer_id", "step", "channel", "template", "to_address", "context", "status",
    "provider", "provider_message_id", "attempts", "not_before", "claimed_by",
)  # fmt: skip


def claim_due(
    conn: Connection,
    now: dt.datetime,
    limit: int,
    token: str,
    run_id: int | None = None,
    channel: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` queued messages due by `now` flipped `queued` → `sending` under `token`: the rows won.

    Oldest due first, of one run and one channel when given, as CLAIMED_COLUMNS. One statement: an UPDATE of
    the due rows' ids chosen by a WITH query, RETURNING them. On PostgreSQL that query takes `FOR UPDATE SKIP
    LOCKED`, so concurrent senders each get rows no other sender is taking; on SQLite the statement
    runs under the one writer's lock, so no other sender takes a row between the choice and the claim.
    It is no quicker than choosing the ids first and sending them back as an IN list: a claim of 10,000 on
    the 1M bench's outbox took 193–211 ms against 199–213 ms that way (`bench/send_rate.py --claims 12`,
    medians, three runs each, alternated); what it spares is the second round trip and a sender's retries
    when another took the rows between the two.

    Ties (a run's messages share their send time per zone) come in the order the database finds them in
    the (status, not_before) index: on SQLite the order they were queued, each batch in id order
    (`enqueue_columns`). Ordering them by id as well would sort every due row at each claim, or keep the id
    in the index, which nearly doubled it (migration 0008).
    """
    table = OutboxMessage.__table__
    due = (
        select(table.c.id)
        .where(table.c.status == "queued", table.c.not_before <= now)
        .order_by(table.c.not_before)
        .limit(limit)
    )
    if run_id is not None:
        due = due.where(table.c.run_id == run_id)
    if channel is not None:
        due = due.where(table.c.channel == channel)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    chosen = due.cte("due")
    if conn.dialect.name == "postgresql":
        # materialized: as a plain sub-select PostgreSQL may run it again for later rows, past its LIMIT
        chosen = chosen.prefix_with("MATERIALIZED")
    # each chosen row is asked again to be queued, through coalesce(): a plain status condition would have
    # SQLite's planner walk the (status, not_before) index over every queued row instead of the primary key
    won = conn.execute(
        update(table)
        .where(table.c.id.in_(select(chosen.c.id)), func.coalesce(table.c.status, "") == "queued")
        .values(status="sending", claimed_by=token, claimed_at=utcnow(), attempts=table.c.attempts + 1)
        .returning(*(_claimed_column(table, name) for name in CLAIMED_COLUMNS))
    )
    names = list(won.keys())
    rows = [dict(zip(names, row, strict=True)) for row in won]  # a Row's mapping view costs ~10x more
    for row in rows:
        row["context"] = decoded_context(row["context"])
    return rows


def _claimed_column(table: Any, name: str) -> Any:
    """A claimed column as RETURNING reads it: the context as its text, decoded by `decoded_context`."""
    if name == "context":
        return type_coerce(table.c.context, Text).label("context")
    return table.c[name]


def decoded_context(value: Any) -> Any:
    """A context as stored JSON text reads (`json.loads`), by orjson; json only for NaN or Infinity.

    A driver that decodes JSON itself (psycopg) hands over the dict: it is returned as it is.
    """
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def release(conn: Connection, not_before: dict[str, dt.datetime], token: str) -> None:
    """`sending` → `queued` for rows this sender claimed but may not send now, each due again at its own time.

    Waiting is not an attempt (quiet hours at the recipient, a check that could not run): the claim's
    increment of `attempts` is undone. Only rows still `sending` under `token` move.
    """
    if not not_before:
        return
    table = OutboxMessage.__table__
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), func.coalesce(table.c.status, "") == "sending")
        .where(table.c.claimed_by == token)
        .values(status="queued", not_before=bindparam("b_not_before"), attempts=table.c.attempts - 1)
    )
    conn.execute(stmt, [{"b_id": mid, "b_not_before": at} for mid, at in not_before.items()])


def start(conn: Connection, token: str, at: dt.datetime, texts: dict[str, str | None]) -> set[str]:
    """Stamp `started_at` on these rows of this sender's claim, their provider calls next; the ids it still held.

    The caller commits this just before the calls: a row whose stamp is committed may have reached the
    provider, any other row of the claim has not. A text given for a row is recorded as `body_text` (what
    a provider lookup matches after a crash). A row no longer `sending` under `token` (its claim was
    reconciled away) is not returned, and must not be sent. The statements are built once: this runs for
    every message sent.
    """
    if not texts:
        return set()
    stamp, record_text = _start_statements()
    won = conn.execute(stamp, {"b_ids": list(texts), "b_token": token, "b_at": at})
    started = set(won.scalars())
    bodies = [{"b_id": mid, "b_body": text} for mid, text in texts.items() if text is not None and mid in started]
    if bodies:
        conn.execute(record_text, bodies)
    return started


@functools.cache
def _start_statements() -> tuple[Any, Any]:
    table = OutboxMessage.__table__
    stamp = (
        update(table)
        .where(table.c.id.in_(bindparam("b_ids", expanding=True)), func.coalesce(table.c.status, "") == "sending")
        .where(table.c.claimed_by == bindparam("b_token"))
        .values(started_at=bindparam("b_at"))
        .returning(table.c.id)
    )
    record_text = update(table).where(table.c.id == bindparam("b_id")).values(body_text=bindparam("b_body"))
    return stamp, record_text


def load(conn: Connection, ids: list[str]) -> list[dict[str, Any]]:
    """The rows for these ids, as plain dicts (column name → value)."""
    if not ids:
        return []
    table = OutboxMessage.__table__
    return [dict(r) for r in conn.execute(select(table).where(table.c.id.in_(ids))).mappings()]


def mark(conn: Connection, mid: str, status: str, **values: Any) -> None:
    """Set one message's status (and any other columns); a `sent` one gets `sent_at` now unless given."""
    if status == "sent":
        values.setdefault("sent_at", utcnow())
    conn.execute(update(OutboxMessage).where(OutboxMessage.id == mid).values(status=status, **values))


CHANGE_COLUMNS = (
    "status",
    "provider",
    "provider_message_id",
    "last_error",
    "not_before",
    "sent_at",
    "subject",
    "body_text",
)


FEW_CHANGES = 64  # below this, PostgreSQL gets a plain executemany: COPY's temporary table costs more


def apply_changes(conn: Connection, changes: list[dict[str, Any]]) -> None:
    """Write a batch of outcomes with one executemany; each change carries `_id` and CHANGE_COLUMNS.

    A claim's worth goes through `update_by_key` (COPY into a temporary table on PostgreSQL); the few
    outcomes a sender commits as they arrive go as one pipelined executemany, since creating and dropping
    a temporary table on every small commit would cost more than the updates and churn the catalog.
    """
    if not changes:
        return
    table = OutboxMessage.__table__
    if len(changes) < FEW_CHANGES and conn.dialect.name == "postgresql":
        rows = [{"b_id": ch["_id"], **{f"b_{c}": ch[c] for c in CHANGE_COLUMNS}} for ch in changes]
        conn.execute(_few_changes(), rows)
        return
    columns = {c: [ch[c] for ch in changes] for c in CHANGE_COLUMNS}
    update_by_key(conn, table, "id", {**columns, "id": [ch["_id"] for ch in changes]})


@functools.cache
def _few_changes() -> Any:
    table = OutboxMessage.__table__
    values = {c: bindparam(f"b_{c}") for c in CHANGE_COLUMNS}
    return update(table).where(table.c.id == bindparam("b_id")).values(values)


ACTIVE_TOKENS: set[str] = set()  # claims held by senders running in this process right now


def sender_token() -> str:
    """host:pid:random: lets `stale_sending` tell a crashed sender on this host from a live one."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _claim_is_dead(claimed_by: str | None, claimed_at: dt.datetime | None, lease: dt.timedelta) -> bool:
    """Whether a `sending` row's sender is gone.

    Past its lease, any claim is dead (a live sender holds a claim for seconds; this also covers a pid
    reused after a restart). Within it: in this process, dead unless a running sender holds the token
    (a task retry after a failed send reclaims its own rows); on this host, dead when its pid is;
    elsewhere, alive.
    """
    if claimed_at is None or utc(claimed_at) < utcnow() - lease:
        return True
    host, _, rest = (claimed_by or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:40] or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return claimed_by not in ACTIVE_TOKENS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def stale_sending(conn: Connection, run_id: int | None = None, lease_seconds: float = 900.0) -> list[str]:
    """Rows left in `sending` by a sender that is gone: dead on this host, or past its lease elsewhere."""
    stmt = select(OutboxMessage.id, OutboxMessage.claimed_by, OutboxMessage.claimed_at).where(
        OutboxMessage.status == "sending"
    )
    if run_id is not None:
        stmt = stmt.where(OutboxMessage.run_id == run_id)
    lease = dt.timedelta(seconds=lease_seconds)
    return [mid for mid, by, at in conn.execute(stmt).all() if _claim_is_dead(by, at, lease)]


def status_counts(conn: Connection, run_id: int | None = None) -> dict[str, int]:
    """Messages per status (of one run when given)."""
    stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if run_id is not None:
        stmt = stmt.where(OutboxMessage.run_id == run_id)
    return {status: int(n) for status, n in conn.execute(stmt).all()}
