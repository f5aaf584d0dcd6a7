"""The campaign's id ranges: every customer in exactly one range, none larger than asked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from winback.warehouse.partitions import first_customers, id_partitions
from winback.warehouse.source import SourceMapping, SourceTables


def _customers(ids: list[str]) -> tuple[sa.Engine, SourceTables]:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (customer_id TEXT PRIMARY KEY)"))
        if ids:
            conn.execute(sa.text("INSERT INTO customers VALUES (:i)"), [{"i": i} for i in ids])
    return engine, SourceTables(SourceMapping())


def _members(ranges: list[tuple[str | None, str | None]], ids: list[str]) -> list[list[str]]:
    # the reads' convention: low <= id < high, None open
    return [[i for i in ids if (low is None or i >= low) and (high is None or i < high)] for low, high in ranges]


@pytest.mark.parametrize(("count", "size"), [(0, 10), (9, 10), (10, 10), (11, 10), (95, 10), (1000, 7)])
def test_every_customer_in_exactly_one_range_of_at_most_the_size(count: int, size: int) -> None:
    ids = sorted(f"C{n:07d}" for n in range(0, count * 3, 3))
    engine, src = _customers(ids)
    with engine.connect() as conn:
        ranges = id_partitions(conn, src, size)
    members = _members(ranges, ids)
    assert sorted(i for group in members for i in group) == ids
    assert all(len(group) <= size for group in members)
    assert len(ranges) == max(1, -(-count // size))  # ceil: no empty range but the single one of an empty table


@pytest.mark.parametrize(("count", "first"), [(0, 5), (4, 5), (5, 5), (6, 5), (100, 25)])
def test_first_customers_range_holds_exactly_the_first_ids(count: int, first: int) -> None:
    ids = sorted(f"C{n:07d}" for n in range(0, count * 3, 3))
    engine, src = _customers(ids)
    with engine.connect() as conn:
        id_range = first_customers(conn, src, first)
    assert _members([id_range], ids) == [ids[:first]]
