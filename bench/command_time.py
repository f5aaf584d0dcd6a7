"""Benchmark: the wall time of `winback campaign` as a user types it, Prefect's temporary server included.

    .venv/bin/python bench/command_time.py [--customers 2000] [--runs 3]

On a small shop the command's own start (imports, checks, the temporary Prefect server) is most of its
time, which `bench/campaign.py` leaves out: it times the flow from `run_flow`, its modules already imported.
Each run is `python -m winback.app.cli campaign` in a new process on a fresh SQLite state, the warehouse a
DuckDB file built once under bench/.cache/ (bench/campaign.py's). Run with PYTHONPATH=<other checkout>/src
to time another version of the code on the same shop.
Last line: command=campaign customers=… runs=… seconds=… median_s=…
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from campaign import AS_OF, CACHE, build_once, fresh_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    warehouse = f"duckdb:///{CACHE / f'warehouse-{args.customers}.duckdb'}"
    build_once(warehouse, args.customers)
    seconds = []
    with tempfile.TemporaryDirectory() as folder:
        state = f"sqlite:///{Path(folder) / 'state.db'}"
        env = {
            **os.environ,
            "WINBACK_WAREHOUSE_URL": warehouse,
            "WINBACK_DATABASE_URL": state,
            "WINBACK_SINK_PATH": str(Path(folder) / "sink.jsonl"),
            "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(ROOT / ".prefect")),  # as `make` sets it
        }
        command = [sys.executable, "-m", "winback.app.cli", "campaign", "--as-of", AS_OF.isoformat()]
        for _ in range(args.runs):
            fresh_state(state)
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, cwd=folder, stdout=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - start)
    print(
        f"command=campaign customers={args.customers} runs={args.runs} "
        f"seconds={','.join(f'{s:.2f}' for s in seconds)} median_s={statistics.median(seconds):.2f}"
    )


if __name__ == "__main__":
    main()
