"""The warehouse's answers about particular customers, by batches of their ids.

Who they are (names, addresses), what a run's messages need, what they agreed to, and how their records stand
when a message is about to go.

Every read is by batches of ids (`crossread`): the ids come from winback's state, the answers from the
warehouse, merged here, never joined across the two databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import pandas as pd
from sqlalchemy import Connection, Select, and_, select

from winback.warehouse.crossread import among, by_ids
from winback.warehouse.frames import fetch_frame, frame_from_rows, raw_rows
from winback.warehouse.source import SourceTables


def contact_details(conn: Connection, src: SourceTables, customer_ids: list[str]) -> pd.DataFrame:
    """Names and addresses for the customers about to be messaged, fetched in chunks of ids."""
    cu = src.customers
    cols = ["customer_id", "first_name", "email", "phone", "locale", "time_zone", "preferred_channel"]
    frames = []
    for start in range(0, len(customer_ids), 5000):
        chunk = customer_ids[start : start + 5000]
        stmt = select(*(src.col(cu, n).label(n) for n in cols)).where(among(conn, src.col(cu, "customer_id"), chunk))
        frames.append(fetch_frame(conn, stmt, cols))
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)


CONTACT_COLUMNS = [
    "customer_id",
    "segment",
    "channel",
    "failure_id",
    "failure_category",
    "decided_cost",
    "first_name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "code",
    "offer_kind",
    "offer_value",
    "currency",
    "expires_at",
    "order_id",
    "occurred_at",
    "resolved_at",
    "description",
    "last_order_at",
    "variant",
]


def contacts_to_queue(
    conn: Connection,
    src: SourceTables,
    run_id: int,
    partition: int = 25_000,
    warehouse: Connection | None = None,
    after_decision: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Everything a run's messages need, for contacted customers without an outbox row yet, in partitions.

    Given `after_decision`, only the customers whose decision's id is higher (decided since).

    The warehouse and winback's state may be two databases, so nothing joins across them: each partition's
    decisions and offers come from the state (`conn`), then those customers' names and addresses and their
    failures from the warehouse (`warehouse`, default `conn`) by batches of ids, merged here. A customer no
    longer in the customers table gets no message, as before.
    """
    from winback.warehouse.models import Decision, Offer, OutboxMessage

    warehouse = warehouse if warehouse is not None else conn
    queued = select(OutboxMessage.id).where(
        OutboxMessage.run_id == Decision.run_id, OutboxMessage.customer_id == Decision.customer_id
    )
    stmt = (
        select(
            Decision.customer_id,
            Decision.segment,
            Decision.channel,
            Decision.failure_id,
            Decision.failure_category,
            Decision.offer_cost,
            Offer.code,
            Offer.kind,
            Offer.value,
            Offer.currency,
            Offer.expires_at,
            Decision.last_order_at,
            Decision.variant,
        )
        .outerjoin(Offer, and_(Offer.run_id == Decision.run_id, Offer.customer_id == Decision.customer_id))
        .where(Decision.run_id == run_id, Decision.action == "contact", ~queued.exists())
    )
    # keyset pages: flat memory on every database, no server-side cursor. The run's pages go by customer id;
    # the decisions after `after_decision` (a step of stages.decide_and_send) by decision id, so that a step
    # reads its own rows, not every row the run stored before it (an index on run and action holds the ids)
    if after_decision is None:
        key, after, columns = Decision.customer_id, "", _STATE_COLUMNS
    else:
        key, after, columns = Decision.id, after_decision, [*_STATE_COLUMNS, "decision_id"]
        stmt = stmt.add_columns(Decision.id)
    stmt = stmt.order_by(key)
    while rows := raw_rows(conn, stmt.where(key > after).limit(partition)):
        after = rows[-1][-1] if after_decision is not None else rows[-1][0]
        state = frame_from_rows(rows, columns, {"decided_cost": "float64", "offer_value": "float64"})
        people = by_ids(warehouse, _people_query(warehouse, src), state["customer_id"].tolist(), _PEOPLE_COLUMNS)
        people["customer_id"] = people["customer_id"].astype(str)
        failure_ids = state["failure_id"].dropna().astype(str).unique().tolist()
        failures = by_ids(warehouse, _failures_query(warehouse, src), failure_ids, _FAILURE_COLUMNS)
        failures["failure_id"] = failures["failure_id"].astype(str)
        frame = state.merge(people, on="customer_id", how="inner")
        frame = frame.merge(failures.drop_duplicates("failure_id"), on="failure_id", how="left")
        frame = frame[CONTACT_COLUMNS].sort_values("customer_id", ignore_index=True)
        for col in ("expires_at", "occurred_at", "resolved_at", "last_order_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        yield frame


_STATE_COLUMNS = ["customer_id", "segment", "channel", "failure_id", "failure_category", "decided_cost", "code",
                  "offer_kind", "offer_value", "currency", "expires_at", "last_order_at", "variant"]  # fmt: skip
_PEOPLE_COLUMNS = ["customer_id", "first_name", "email", "phone", "locale", "time_zone"]
_FAILURE_COLUMNS = ["failure_id", "order_id", "occurred_at", "resolved_at", "description"]


def _people_query(conn: Connection, src: SourceTables) -> Callable[[list], Select]:
    cu = src.customers
    return lambda ids: select(*(src.col(cu, n).label(n) for n in _PEOPLE_COLUMNS)).where(
        among(conn, src.col(cu, "customer_id"), ids)
    )


def _failures_query(conn: Connection, src: SourceTables) -> Callable[[list], Select]:
    f = src.failures
    return lambda ids: select(*(src.col(f, n).label(n) for n in _FAILURE_COLUMNS)).where(
        among(conn, src.col(f, "failure_id"), ids)
    )


def consent_records(
    conn: Connection, src: SourceTables, customer_id: str, warehouse: Connection | None = None
) -> pd.DataFrame:
    """What a customer agreed to and revoked, with source and time.

    Both the business's consent records (from `warehouse`, default `conn`) and winback's own opt-outs
    (webhooks, replies, provider answers, from `conn`). Columns: channel, state, source, at, origin.
    """
    from winback.warehouse.models import Suppression

    co = src.consents
    given = (
        (warehouse if warehouse is not None else conn)
        .execute(
            select(
                src.col(co, "channel"), src.col(co, "granted"), src.col(co, "source"), src.col(co, "recorded_at")
            ).where(src.col(co, "customer_id") == customer_id)
        )
        .all()
    )
    revoked = conn.execute(
        select(Suppression.channel, Suppression.reason, Suppression.source, Suppression.created_at).where(
            Suppression.customer_id == customer_id
        )
    ).all()
    rows = [(ch, "granted" if ok else "not granted", source, at, "customer record") for ch, ok, source, at in given]
    rows += [(ch, f"opted out ({reason})", source, at, "winback") for ch, reason, source, at in revoked]
    frame = pd.DataFrame.from_records(rows, columns=["channel", "state", "source", "at", "origin"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values(["channel", "at"], ignore_index=True)


class SendTimeFlags(NamedTuple):
    """A claim's customers as their records stand when their messages are about to go, as sets of ids.

    Sets rather than an object per customer: the sender asks four membership questions per message.
    """

    found: set[str]  # still in the customers table (the others were erased)
    do_not_contact: set[str]
    fraud_flag: set[str]
    granted: set[tuple[str, str]]  # (customer, channel) whose consent is granted now


def send_time_flags(conn: Connection, src: SourceTables, customer_ids: list[str]) -> SendTimeFlags:
    """Current flags and granted consents of these customers (see `warehouse.send_time`, which reads them)."""
    from winback.warehouse.send_time import send_time_facts

    return send_time_facts(conn, src, customer_ids).flags
