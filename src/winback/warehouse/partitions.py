"""The customer-id ranges a campaign reads in: batches that are index range scans, and can go to other workers."""

from __future__ import annotations

import itertools

from sqlalchemy import Connection, func, select

from winback.warehouse.source import SourceTables
from winback.warehouse.summaries import IdRange


def id_partitions(conn: Connection, src: SourceTables, batch_size: int) -> list[IdRange]:
    """Split the customer-id space into ranges of about `batch_size` customers (ordered by id).

    The boundaries come from the customers table's primary-key order, so each range is an index range
    scan and batches can run on separate workers later.
    """
    cid = src.col(src.customers, "customer_id")
    total = conn.execute(select(func.count()).select_from(src.customers)).scalar_one()
    bounds: list[str | None] = [None]
    for offset in range(batch_size, int(total), batch_size):
        bounds.append(conn.execute(select(cid).order_by(cid).offset(offset).limit(1)).scalar_one())
    bounds.append(None)
    return list(itertools.pairwise(bounds))
