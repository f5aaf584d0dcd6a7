"""Benchmark: the full campaign on 1,000,000 customers / ~10,000,000 orders, against the bare SQL floor.

    .venv/bin/python bench/campaign.py [--customers 1000000] [--database bench/.cache/bench-1m.db]
    .venv/bin/python bench/campaign.py --url postgresql://user@host/db   # PostgreSQL: built there once

The warehouse is built once and cached on disk (minutes); each run resets winback's own tables and times
the `winback_campaign` flow end to end and per stage, then the floor: one bare aggregation of the orders
per customer on the same database. Peak RSS is this process's (the child that reads the summaries and the
helper sender run beside it: see the README for theirs).
Last line: campaign_s=… floor_s=… ratio=… peak_rss_mb=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winback.app.runtime import configure_prefect_environment

configure_prefect_environment()

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def build_once(path: Path, customers: int) -> None:
    marker = path.with_suffix(f".{customers}.ready")
    if marker.exists() and path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    code = (
        "import datetime as dt, time; from winback.warehouse.db import make_engine;"
        "from winback.app.demo_data import generate_demo_warehouse;"
        f"t=time.perf_counter(); s=generate_demo_warehouse(make_engine('sqlite:///{path}'), customers={customers},"
        " seed=7, as_of=dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC), replace=True);"
        "print(f'built {s.customers:,} customers, {s.orders:,} orders in {time.perf_counter()-t:.0f} s')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    marker.touch()


def build_once_at(url: str, customers: int) -> None:
    """The warehouse at a server URL, built unless a previous run left one of this size there."""
    from sqlalchemy import inspect, text

    from winback.app.demo_data import generate_demo_warehouse
    from winback.warehouse.db import make_engine

    engine = make_engine(url)
    if inspect(engine).has_table("customers"):
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM customers")).scalar_one() == customers:
                return
    started = time.perf_counter()
    built = generate_demo_warehouse(engine, customers=customers, seed=7, as_of=AS_OF, replace=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    print(f"built {built.customers:,} customers, {built.orders:,} orders in {time.perf_counter() - started:.0f} s")


def reset_winback_tables(url: str) -> None:
    from sqlalchemy import text

    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade
    from winback.warehouse.models import Base

    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(url, engine=engine)


def floor_seconds(url: str) -> float:
    """One bare GROUP BY of the orders per customer, fetched into Python: the cost of reading the data."""
    from sqlalchemy import text

    from winback.warehouse.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        start = time.perf_counter()
        rows = conn.execute(
            text(
                "SELECT customer_id, count(*), min(ordered_at), max(ordered_at), sum(amount) FROM orders "
                "WHERE ordered_at <= :as_of GROUP BY customer_id"
            ),
            {"as_of": AS_OF.strftime("%Y-%m-%d %H:%M:%S.%f") if url.startswith("sqlite") else AS_OF},
        ).fetchall()
        elapsed = time.perf_counter() - start
    print(f"floor: {len(rows):,} customers aggregated in {elapsed:.1f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database", type=Path, default=Path("bench/.cache/bench-1m.db"))
    parser.add_argument("--budget", type=float, default=50_000.0)
    parser.add_argument("--url", help="a PostgreSQL database to run on instead of the SQLite file")
    args = parser.parse_args()
    if args.url:
        url = args.url
        build_once_at(url, args.customers)
    else:
        build_once(args.database, args.customers)
        url = f"sqlite:///{args.database}"
    os.environ["WINBACK_DATABASE_URL"] = url
    sink = Path("bench/.cache/pg.sink.jsonl") if args.url else args.database.with_suffix(".sink.jsonl")
    os.environ.setdefault("WINBACK_SINK_PATH", str(sink))
    Path(os.environ["WINBACK_SINK_PATH"]).unlink(missing_ok=True)
    reset_winback_tables(url)

    from winback.config import CampaignConfig
    from winback.flows.campaign import winback_campaign

    config = CampaignConfig(campaign_id="bench", budget=args.budget)
    start = time.perf_counter()
    result = winback_campaign(config=config, as_of=AS_OF, now=AS_OF)
    campaign_s = time.perf_counter() - start
    print(
        f"campaign: {campaign_s:.1f} s end to end; decisions {result['decisions']}; "
        f"offers {result['offers_issued']:,}; messages {result['messages_queued']:,}; sent {result['sending']}"
    )
    for stage, seconds in result["timings"].items():
        print(f"  {stage:<20} {seconds:7.2f} s   peak RSS so far {result['peak_rss_mb'][stage]:>6} MiB")
    floor_s = floor_seconds(url)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"campaign_s={campaign_s:.1f} floor_s={floor_s:.1f} ratio={campaign_s / floor_s:.2f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
