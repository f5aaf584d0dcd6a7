"""What a claim needs from the warehouse at send time, in ONE query per claim (a few hundred customers).

Before a claim of outbox rows goes out, winback re-reads its customers' records: still there (not erased),
do-not-contact, fraud flag, consent per channel, and, for the later steps of a service-recovery journey,
whether the customer has ordered since (a customer who came back gets no more follow-ups). Both come from
the warehouse, which may be a remote analytical database where every round trip costs: they are read
together, customers left-joined to their consents and to their latest order, one statement per 5,000 ids
(on DuckDB the ids as one list parameter, `crossread.among`: an `IN` list of 2,000 scanned the table per row).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, null, select

from winback.warehouse.crossread import among
from winback.warehouse.frames import raw_rows
from winback.warehouse.quality import as_flag
from winback.warehouse.queries import SendTimeFlags
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc

IDS_PER_QUERY = 5000


class SendTimeFacts(NamedTuple):
    """A claim's customers as the warehouse has them now: their flags and consents, and their latest orders."""

    flags: SendTimeFlags
    last_order: dict[str, dt.datetime]  # of the customers asked about (later journey steps) who ever ordered


def send_time_facts(
    conn: Connection, src: SourceTables, customer_ids: Collection[str], last_order_of: Collection[str] = ()
) -> SendTimeFacts:
    """Flags, granted consents and (for `last_order_of`) latest order times of a claim's customers, one query.

    Parameters
    ----------
    conn
        A connection to the warehouse (read only).
    src
        The source tables, as the mapping names them.
    customer_ids
        The claim's customers.
    last_order_of
        Those of them whose latest order is wanted (customers with a follow-up step in the claim).

    Returns
    -------
    SendTimeFacts
        Flags read strictly, as `warehouse.queries.send_time_flags` reads them: what is not a clear no
        protects the customer, what is not a clear yes is not consent, and a channel is granted only when
        every consent row for it grants it.
    """
    cu, co, o = src.customers, src.consents, src.orders
    cid = src.col(cu, "customer_id")
    ids = sorted({str(c) for c in customer_ids})
    wanted = {str(c) for c in last_order_of}
    flags = SendTimeFlags(set(), set(), set(), set())
    last_order: dict[str, dt.datetime] = {}
    refused: set[tuple[str, str]] = set()
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        joined = cu.outerjoin(co, src.col(co, "customer_id") == cid)
        asked = [c for c in chunk if c in wanted]
        if asked:
            ocid = src.col(o, "customer_id")
            latest = (
                select(ocid.label("customer_id"), func.max(src.col(o, "ordered_at")).label("last_order"))
                .where(among(conn, ocid, asked))
                .group_by(ocid)
                .subquery("latest_order")
            )
            joined = joined.outerjoin(latest, latest.c.customer_id == cid)
            last = latest.c.last_order
        else:
            last = null().label("last_order")
        columns = (cid, src.col(cu, "do_not_contact"), src.col(cu, "fraud_flag"), src.col(co, "channel"),
                   src.col(co, "granted"), last)  # fmt: skip
        for found, dnc, fraud, channel, granted, ordered in raw_rows(conn, select(*columns).select_from(joined)
                                                                     .where(among(conn, cid, chunk))):  # fmt: skip
            customer = str(found)  # as the outbox holds it, should the source key be a number
            flags.found.add(customer)
            if _flag(dnc) is not False:
                flags.do_not_contact.add(customer)
            if _flag(fraud) is not False:
                flags.fraud_flag.add(customer)
            if channel is not None:
                (flags.granted if _flag(granted) else refused).add((customer, channel))
            if ordered is not None:
                last_order[customer] = _timestamp(ordered)
    flags.granted.difference_update(refused)
    return SendTimeFacts(flags, last_order)


def _flag(value: Any) -> bool | None:
    """`as_flag`, answered at once for what a boolean column holds (three flags a row, every claim)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    return as_flag(value)


def _timestamp(value: Any) -> dt.datetime:
    """A driver's timestamp (SQLite gives text) as an aware UTC datetime."""
    return utc(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
