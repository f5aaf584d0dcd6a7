"""Per-channel token buckets in the state database, shared by every sender (`wb_rate_buckets`).

A provider's rate limit is per account, not per process: N senders (Prefect tasks, flow runs on several
workers and machines) each pacing itself at the full rate would together send N times too fast. So every
sender takes its tokens from one bucket per channel here. A take is one UPDATE that refills the bucket
for the time elapsed (at most `capacity` tokens) and takes `want` tokens only if that many are there: the
row lock (PostgreSQL) or the single writer (SQLite) serialises concurrent takes, and no read comes first.
Times are epoch seconds of the senders' clocks (keep them in NTP sync); a clock behind the bucket's
refills nothing, it never takes the bucket back in time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, literal, select, update

from winback.warehouse.insert_once import insert_if_absent
from winback.warehouse.models import RateBucket


def _least(a: Any, b: Any) -> Any:
    """min(a, b) as SQL that PostgreSQL and SQLite both speak (`least` is PostgreSQL's, `min` SQLite's)."""
    return case((a < b, a), else_=b)


def take(conn: Connection, channel: str, want: int, per_second: float, capacity: float, now: float) -> bool:
    """Take `want` tokens from `channel`'s bucket refilled up to `now`; False (nothing taken) when too few.

    The bucket is created full on first use. The caller commits (one short transaction per take).
    """
    table = RateBucket.__table__
    c = table.c
    elapsed = case((literal(now) > c.updated_at, literal(now) - c.updated_at), else_=0.0)
    refilled = _least(c.tokens + elapsed * per_second, literal(capacity))
    stmt = (
        update(table)
        .where(c.channel == channel, refilled >= want)
        .values(
            tokens=refilled - want,
            updated_at=case((literal(now) > c.updated_at, literal(now)), else_=c.updated_at),
            version=c.version + 1,
        )
        .returning(c.version)
    )
    if conn.execute(stmt).first() is not None:
        return True
    created = insert_if_absent(
        conn, table, {"channel": channel, "tokens": capacity, "updated_at": now, "version": 0}, "channel"
    )
    return conn.execute(stmt).first() is not None if created else False


def seconds_until(conn: Connection, channel: str, want: int, per_second: float, capacity: float, now: float) -> float:
    """How long until `want` tokens could be there, by the bucket as last written (0 when it has no row yet)."""
    row = conn.execute(select(RateBucket.tokens, RateBucket.updated_at).where(RateBucket.channel == channel)).first()
    if row is None:
        return 0.0
    tokens = min(capacity, row.tokens + max(0.0, now - row.updated_at) * per_second)
    return max(0.0, (want - tokens) / per_second)
