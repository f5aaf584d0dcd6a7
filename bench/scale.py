"""Benchmark: a partitioned campaign run (dry run: read, gate, score, decide) by size and Dask workers.

    .venv/bin/python bench/scale.py [--sizes 250000,500000,1000000] [--workers 1,2] [--partition-size 125000]

Each size's demo shop (SQLite, ~10 orders per customer) is built once under bench/.cache/ (about a minute
per million customers) and read as the warehouse, read only; winback's state is a fresh SQLite file. Each
(size, workers) pair runs in its own process against a Dask LocalCluster of that many single-threaded
worker processes started beforehand (configured as docs/scale.md advises: no statistical profiler), with
winback and Prefect imported in each worker as a long-lived cluster's workers would have them (that
start-up is printed apart, `cluster_start_s`), so peaks are that run's own.
Prefect's temporary server is started beforehand too, as a deployment's server would be running
(`prefect_start_s`, apart): `seconds` is the flow run itself, `read_seconds` its read stage (with the
checks and plans before the partitions), `partitions_s` the partitioned stage alone (from the first task's
start on a worker to the last one's end, Dask's task stream) and `tasks_s` the tasks' summed time on
the workers. One line per pair:
customers=… workers=… seconds=… read_seconds=… us_per_customer=… peak_worker_rss_mb=… flow_rss_mb=… partitions_s=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # a loaded shared machine
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from winback.stages.partition_plan import DEFAULT_PARTITION_SIZE  # noqa: E402 (after the path is set)

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def one_run(customers: int, workers: int, partition_size: int) -> None:
    """One dry run on a fresh cluster of `workers`; prints the result line."""
    from winback.app.runtime import configure_prefect_environment

    configure_prefect_environment()
    import distributed

    from winback.config import CampaignConfig
    from winback.flows.campaign import winback_campaign
    from winback.flows.partitions import LOCAL_WORKER_CONFIG
    from winback.warehouse.migrate import upgrade

    shop = ROOT / "bench" / ".cache" / f"scale-{customers}.db"
    state = Path(tempfile.mkdtemp(prefix="winback-scale-")) / "state.db"
    upgrade(f"sqlite:///{state}")
    os.environ.update(
        WINBACK_DATABASE_URL=f"sqlite:///{state}",
        WINBACK_WAREHOUSE_URL=f"sqlite:///{shop}",
        WINBACK_PARTITION_SIZE=str(partition_size),
    )
    # a deployment's Prefect server runs before any campaign: the temporary one this process would start
    # inside the flow call (seconds, the same at every size) is started first and printed apart
    from campaign import start_prefect_server

    prefect_s = start_prefect_server()
    started = time.perf_counter()
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", config=LOCAL_WORKER_CONFIG
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        # a long-lived cluster's workers have imported winback and Prefect (seconds each) before any run:
        # that import is counted with the cluster's start, not with the run's partitions
        client.run(importlib.import_module, "winback.flows.partitions")
        cluster_s = time.perf_counter() - started
        os.environ["WINBACK_DASK_ADDRESS"] = cluster.scheduler_address
        config = CampaignConfig(campaign_id="scale", budget=50_000.0, dry_run=True)
        started = time.perf_counter()
        with distributed.get_task_stream(client=client) as stream:  # every task's compute span, as the workers saw it
            result = winback_campaign(config=config, as_of=AS_OF, now=AS_OF)
        seconds = time.perf_counter() - started
        worker_peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    read_s = result["timings"]["read"]
    computed = [span for task in stream.data for span in task["startstops"] if span["action"] == "compute"]
    partitions_s = max(span["stop"] for span in computed) - min(span["start"] for span in computed)
    flow_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"customers={customers} workers={workers} seconds={seconds:.1f} read_seconds={read_s:.1f} "
        f"us_per_customer={seconds / customers * 1e6:.1f} peak_worker_rss_mb={max(worker_peaks.values()):.0f} "
        f"flow_rss_mb={flow_rss:.0f} partitions_s={partitions_s:.1f} "
        f"tasks_s={sum(span['stop'] - span['start'] for span in computed):.1f} "
        f"cluster_start_s={cluster_s:.1f} prefect_start_s={prefect_s:.1f} "
        f"partitions={result['batches']} "
        + " ".join(f"{stage}_s={s}" for stage, s in result["timings"].items())
        + " "
        + " ".join(f"{stage}_peak_mb={mb}" for stage, mb in result["peak_rss_mb"].items()),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--partition-size", type=int, default=DEFAULT_PARTITION_SIZE)
    parser.add_argument("--one", nargs=2, type=int, metavar=("CUSTOMERS", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_run(*args.one, args.partition_size)
        return
    from campaign import build_once

    for customers in [int(n) for n in args.sizes.split(",")]:
        build_once(f"sqlite:///{ROOT / 'bench' / '.cache' / f'scale-{customers}.db'}", customers)
        for workers in [int(n) for n in args.workers.split(",")]:
            one = [sys.executable, __file__, "--one", str(customers), str(workers)]
            subprocess.run([*one, "--partition-size", str(args.partition_size)], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
