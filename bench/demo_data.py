"""Time the demo warehouse generator: `python bench/demo_data.py --customers 1000000 [--url ...]`.

Without --url it writes a throwaway SQLite file (deleted afterwards unless --keep). Prints the summary,
wall time, peak RSS and rows per second, so the "1M customers well under 3 minutes" budget can be checked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

from winback.app.demo_data import generate_demo_warehouse
from winback.warehouse.db import make_engine


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", help="database URL; default: a temporary SQLite file")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="winback-demo-bench-"))
    url = args.url or f"sqlite:///{workdir / 'demo.db'}"
    engine = make_engine(url)
    as_of = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
    started = time.perf_counter()
    summary = generate_demo_warehouse(
        engine,
        customers=args.customers,
        seed=args.seed,
        as_of=as_of,
        chunk_size=args.chunk_size,
        replace=True,
    )
    wall = time.perf_counter() - started
    engine.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = summary.customers * 3 + summary.orders + summary.service_failures  # customers, truth, 2 consents
    print(summary)
    print(
        f"{summary.customers:,} customers, {summary.orders:,} orders "
        f"({summary.orders_per_customer:.2f}/customer) "
        f"in {wall:.1f} s on {summary.dialect}; {rows / wall:,.0f} rows/s; peak RSS {peak_mib:,.0f} MiB"
    )
    if not args.url:
        db = workdir / "demo.db"
        print(f"SQLite file: {db} ({db.stat().st_size / 2**20:,.0f} MiB)")
        if not args.keep:
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
