"""The customer-id ranges a campaign reads in: batches that are index range scans, and can go to other workers."""

from __future__ import annotations

import itertools

from sqlalchemy import Connection, select

from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import IdRange


def id_partitions(conn: Connection, src: SourceTables, batch_size: int) -> list[IdRange]:
    """Split the customer-id space into ranges of about `batch_size` customers (ordered by id).

    The boundaries come from the customers table's primary-key order, so each range is an index range
    scan and batches can run on separate workers later.
    """
    bounds: list[str | None] = [None]
    while True:
        # keyset walk: each boundary is found from the previous one, so the index is read once in all
        # (an OFFSET from the start per boundary reads customers² / batch_size rows)
        bound = _id_after(conn, src, batch_size, bounds[-1])
        if bound is None:
            break
        bounds.append(bound)
    bounds.append(None)
    return list(itertools.pairwise(bounds))


def first_customers(conn: Connection, src: SourceTables, count: int) -> IdRange:
    """The id range of the first `count` customers in id order (all of them when there are fewer): one index read."""
    return (None, _id_after(conn, src, count, None))


def _id_after(conn: Connection, src: SourceTables, count: int, start: str | None) -> str | None:
    """The customer id `count` places after `start` (the first id when None) in id order; None past the end."""
    cid = src.col(src.customers, "customer_id")
    after = select(cid).order_by(cid).offset(count).limit(1)
    if start is not None:
        after = after.where(cid >= start)
    return conn.execute(after).scalar_one_or_none()
