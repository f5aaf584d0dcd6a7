"""Benchmark: one sender process's cost per message (claim, checks, render, sink, outcome recorded).

    .venv/bin/python bench/send_rate.py [--messages 40000] [--database bench/.cache/state-duckdb-1000000.db]
                                        [--warehouse duckdb:///bench/.cache/warehouse-1000000.duckdb]
                                        [--wal-autocheckpoint PAGES] [--claims N]

Runs on the state database `bench/campaign.py` leaves behind (its outbox full of one run's messages), the
send-time checks reading its warehouse (WINBACK_WAREHOUSE_URL, default the DuckDB file it builds): every row
of that run goes back to `queued`, then one `send_due` in this process, to the local sink, sends
`--messages` of them. `--wal-autocheckpoint` overrides winback's SQLite setting, to compare. `--claims N`
times N claims of 10,000 (`warehouse.outbox.claim_due`) alone instead, each rolled back so every one finds
the same queued rows. Last line: messages=… seconds=… us_per_message=…, or claims=… claim_size=… median_ms=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, event, text

from winback.channels.sink import SinkChannel
from winback.delivery.dispatch import LOCAL_CLAIM_SIZE, SendLimits, send_due, send_time_source
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.settings import Settings
from winback.warehouse import outbox
from winback.warehouse.db import make_engine
from winback.warehouse.source import SourceTables

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)  # bench/campaign.py's as-of and send time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--database", type=Path, default=Path("bench/.cache/state-duckdb-1000000.db"))
    parser.add_argument("--warehouse", default="duckdb:///bench/.cache/warehouse-1000000.duckdb")
    parser.add_argument("--wal-autocheckpoint", type=int, default=None)
    parser.add_argument("--claims", type=int, default=0, help="time this many claims alone, then stop")
    args = parser.parse_args()
    os.environ.setdefault("WINBACK_WAREHOUSE_URL", args.warehouse)
    os.environ.setdefault("WINBACK_DATABASE_URL", f"sqlite:///{args.database}")
    if not args.database.exists():
        raise SystemExit(f"{args.database}: run bench/campaign.py first, it builds and fills this database")
    engine = make_engine(f"sqlite:///{args.database}")
    if args.wal_autocheckpoint is not None:
        pages = args.wal_autocheckpoint
        event.listen(engine, "connect", lambda conn, _: conn.execute(f"PRAGMA wal_autocheckpoint={pages}"))
    with engine.begin() as conn:
        run_id = conn.execute(text("SELECT max(run_id) FROM wb_outbox")).scalar_one()
        if run_id is None:
            raise SystemExit(f"{args.database}: no outbox rows; run bench/campaign.py first")
        conn.execute(
            text(
                "UPDATE wb_outbox SET status = 'queued', subject = NULL, body_text = NULL, claimed_by = NULL,"
                " claimed_at = NULL, sent_at = NULL, provider = NULL, provider_message_id = NULL,"
                " last_error = NULL WHERE run_id = :run AND status != 'queued'"
            ),
            {"run": run_id},
        )
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # every measurement starts from the same WAL
    if args.claims:
        time_claims(engine, run_id, args.claims)
        return
    with tempfile.TemporaryDirectory() as sink_dir:
        sink = SinkChannel(Path(sink_dir) / "sink.jsonl")
        settings = Settings()
        start = time.perf_counter()
        report = send_due(
            engine, {"email": sink, "sms": sink}, run_id=run_id, campaign_id="bench", now=AS_OF,
            limits=SendLimits(email_per_second=1e6, sms_per_second=1e6), max_messages=args.messages,
            source=send_time_source(engine, SourceTables.from_settings(settings)),
            links=UnsubscribeLinks.from_settings(settings),
        )  # fmt: skip
        seconds = time.perf_counter() - start
    handled = sum(report.as_dict().values())
    print(f"outcomes: {report.as_dict()}")
    print(f"messages={handled} seconds={seconds:.2f} us_per_message={seconds / handled * 1e6:.0f}")


def time_claims(engine: Engine, run_id: int, count: int, size: int = LOCAL_CLAIM_SIZE) -> None:
    """`count` claims of `size` of the run's due messages, each rolled back; their median time."""
    times = []
    for _ in range(count):
        with engine.connect() as conn, conn.begin() as transaction:
            start = time.perf_counter()
            won = outbox.claim_due(conn, AS_OF, size, "bench", run_id)
            times.append(time.perf_counter() - start)
            transaction.rollback()
        if len(won) != size:
            raise SystemExit(f"a claim won {len(won)} rows, not {size}: fewer messages are due")
    print(f"claims={count} claim_size={size} median_ms={statistics.median(times) * 1000:.0f}")


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
