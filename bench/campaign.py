"""Benchmark: the full campaign on 1,000,000 customers / ~10,000,000 orders, its reads against the bare floor.

    .venv/bin/python bench/campaign.py                                   # DuckDB warehouse, SQLite state
    .venv/bin/python bench/campaign.py --warehouse sqlite                # SQLite warehouse, SQLite state
    .venv/bin/python bench/campaign.py --warehouse postgresql --start-postgres   # both on a throwaway server
    .venv/bin/python bench/campaign.py --warehouse postgresql --url postgresql://u@host/wh [--state-url ...]
    .venv/bin/python bench/campaign.py --server-running                  # Prefect's server up before the clock

The warehouse is built once and cached (DuckDB and SQLite files under bench/.cache/, or the PostgreSQL database
given; minutes); winback's state is a fresh database each run (a SQLite file beside the warehouse, or a
`_state` database on the same PostgreSQL server). The run times the `winback_campaign` flow end to end and per
stage, sending to the file sink, then the floor: one bare `GROUP BY customer` of the orders fetched into Python
on the same warehouse (DuckDB: its own Python API, columns into numpy; others: the driver's rows).

reads_s is the flow's read and gate stages (summaries, failures, reachability, judged); score_s the model fit
and scoring; decide_and_send_s deciding, storing the decisions with their offers, queueing and sending, which
overlap (stages.decide_and_send); peak_rss_mb the largest resident set
of this process and of its finished children (reading partitions, sending processes). A line before the last
gives the CPU time the campaign took, in this process and in the processes it started (Prefect's temporary
server, sender processes, Dask workers), and so the least time any schedule could take on this machine's cores.
With --server-running, Prefect's temporary server is started before the clock, as a deployment finds its
server running (bench/scale.py does the same); its start is printed apart, `prefect_start_s`, at the end.
Last line: warehouse=… reads_s=… floor_s=… score_s=… decide_and_send_s=… campaign_s=… peak_rss_mb=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # a loaded shared machine
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
CACHE = ROOT / "bench" / ".cache"


def build_once(url: str, customers: int) -> None:
    """The demo warehouse at `url`, built in a child process unless a previous run left one of this size there.

    A child process: DuckDB lets one process open a file with one configuration only, and the campaign
    opens it read only. On a fresh checkout the cache folder is made first (a file URL under it).
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    code = (
        "import datetime as dt, sys, time; from sqlalchemy import create_engine, inspect, text;"
        "from winback.warehouse.readonly import normalised_url;"
        "from winback.app.demo_data import generate_demo_warehouse;"
        "url, n = sys.argv[1], int(sys.argv[2]); engine = create_engine(normalised_url(url))\n"
        "if inspect(engine).has_table('customers'):\n"
        "    with engine.connect() as conn:\n"
        "        if conn.execute(text('SELECT count(*) FROM customers')).scalar_one() == n: sys.exit(0)\n"
        "t = time.perf_counter()\n"
        "s = generate_demo_warehouse(engine, customers=n, seed=7, as_of=dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC),"
        " replace=True)\n"
        "print(f'built {s.customers:,} customers, {s.orders:,} orders in {time.perf_counter() - t:.0f} s')\n"
        "engine.dispose()\n"
    )
    subprocess.run([sys.executable, "-c", code, url, str(customers)], check=True, cwd=ROOT)


def fresh_state(url: str) -> None:
    """winback's own tables, empty and migrated, at `url` (a file removed first; on a server, dropped)."""
    from sqlalchemy import text

    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade
    from winback.warehouse.models import Base

    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    engine = make_engine(url)
    if not url.startswith("sqlite"):
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(url, engine=engine)
    engine.dispose()


def floor_seconds(url: str) -> float:
    """One bare GROUP BY of the orders per customer, fetched into Python: the cost of reading the data."""
    sql = (
        "SELECT customer_id, count(*), min(ordered_at), max(ordered_at), sum(amount) FROM orders "
        "WHERE ordered_at <= {as_of} GROUP BY customer_id"
    )
    if url.startswith("duckdb"):
        from winback.warehouse.readonly import warehouse_engine_for

        # DuckDB's own connection under the run's engine: one process may open a file with one configuration only
        raw = warehouse_engine_for(url).raw_connection()
        try:
            start = time.perf_counter()
            result = raw.driver_connection.execute(sql.format(as_of="$1"), [AS_OF]).fetchnumpy()
            elapsed = time.perf_counter() - start
        finally:
            raw.close()
        customers = len(result["customer_id"])
    else:
        from sqlalchemy import text

        from winback.warehouse.readonly import warehouse_engine

        engine = warehouse_engine(url)
        as_of = AS_OF.strftime("%Y-%m-%d %H:%M:%S.%f") if url.startswith("sqlite") else AS_OF
        with engine.connect() as conn:
            start = time.perf_counter()
            rows = conn.execute(text(sql.format(as_of=":as_of")), {"as_of": as_of}).cursor.fetchall()
            elapsed = time.perf_counter() - start
        engine.dispose()
        customers = len(rows)
    print(f"floor: {customers:,} customers aggregated in {elapsed:.1f} s")
    return elapsed


def own_cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its children that ended and were waited for."""
    own, ended = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, ended.ru_utime + ended.ru_stime


def started_cpu_seconds() -> dict[int, float]:
    """CPU seconds of each process below this one that is still running, by pid (psutil comes with Dask)."""
    import psutil

    out: dict[int, float] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended meanwhile: counted with the waited-for children
            continue
        out[child.pid] = times.user + times.system
    return out


@dataclass(frozen=True)
class CampaignCpu:
    """The CPU seconds a run took: in this process, and in the processes it started (ended or still running)."""

    own: float
    started: float

    @property
    def total(self) -> float:
        return self.own + self.started

    @classmethod
    def between(
        cls,
        own_before: tuple[float, float],
        running_before: dict[int, float],
        own_after: tuple[float, float],
        running_after: dict[int, float],
    ) -> CampaignCpu:
        """What was spent between two readings: Prefect's server is still running at the end, senders ended."""
        running = sum(seconds - running_before.get(pid, 0.0) for pid, seconds in running_after.items())
        return cls(own_after[0] - own_before[0], own_after[1] - own_before[1] + running)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL cluster on a free local port for this run (the test suite's own); its admin URL."""
    sys.path.insert(0, str(ROOT / "tests"))
    from standins.postgres import local_postgres, pg_bin

    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with local_postgres(bindir, "-c shared_buffers=256MB -c max_wal_size=4GB") as url:
        yield url


def postgres_databases(server: str) -> tuple[str, str]:
    """A warehouse and a state database on the server at `server` (created when missing)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in ("bench_warehouse", "bench_state"):
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{server}/bench_warehouse", f"{server}/bench_state"


def analyze(url: str) -> None:
    """Fresh planner statistics on a PostgreSQL warehouse (a no-op elsewhere)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import text

    from winback.warehouse.db import make_engine

    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def run(warehouse: str, state: str, kind: str, budget: float, server_running: bool = False) -> None:
    """Build what is missing, run the campaign once, print the stages and the one-line result."""
    os.environ["WINBACK_WAREHOUSE_URL"] = warehouse
    os.environ["WINBACK_DATABASE_URL"] = state
    sink = CACHE / f"{kind}.sink.jsonl"
    os.environ.setdefault("WINBACK_SINK_PATH", str(sink))
    Path(os.environ["WINBACK_SINK_PATH"]).unlink(missing_ok=True)
    fresh_state(state)

    from winback.app.runtime import configure_prefect_environment

    configure_prefect_environment()
    from winback.app.commands.common import run_flow
    from winback.config import CampaignConfig
    from winback.flows.campaign import winback_campaign

    config = CampaignConfig(campaign_id="bench", budget=budget)
    prefect_start_s = start_prefect_server() if server_running else None
    own_before, started_before = own_cpu_seconds(), started_cpu_seconds()
    start = time.perf_counter()  # called as `winback campaign` calls it (run_flow: the same Prefect settings)
    result = run_flow(winback_campaign, config=config, as_of=AS_OF, now=AS_OF)
    campaign_s = time.perf_counter() - start
    cpu = CampaignCpu.between(own_before, started_before, own_cpu_seconds(), started_cpu_seconds())
    print(
        f"campaign: {campaign_s:.1f} s end to end; decisions {result['decisions']}; "
        f"offers {result['offers_issued']:,}; messages {result['messages_queued']:,}; sent {result['sending']}"
    )
    timings = result["timings"]
    for stage, seconds in timings.items():
        print(f"  {stage:<30} {seconds:7.2f} s   peak RSS so far {result['peak_rss_mb'][stage]:>6} MiB")
    cores = os.cpu_count() or 1
    print(
        f"cpu: {cpu.total:.1f} s over {campaign_s:.1f} s (this process {cpu.own:.1f} s, the processes it started "
        f"{cpu.started:.1f} s): this work takes at least {cpu.total / cores:.1f} s on {cores} cores"
    )
    floor_s = floor_seconds(warehouse)
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    # the reads: summaries, failures and reachability read and judged ("read" + "gate"; one stage before)
    reads = timings.get("read", 0.0) + timings.get("gate", 0.0) + timings.get("summarise_failures_and_reach", 0.0)
    score, decide_and_send = timings.get("score", 0.0), timings.get("decide_and_send", 0.0)
    print(
        f"warehouse={kind} reads_s={reads:.1f} floor_s={floor_s:.1f} score_s={score:.1f} "
        f"decide_and_send_s={decide_and_send:.1f} campaign_s={campaign_s:.1f} peak_rss_mb={peak:.0f}"
        + (f" prefect_start_s={prefect_start_s:.1f}" if prefect_start_s is not None else "")
    )


def start_prefect_server() -> float:
    """Prefect's temporary server started now, the one the flow's client then finds running: its seconds."""
    from prefect.server.api.server import SubprocessASGIServer

    started = time.perf_counter()
    SubprocessASGIServer().start()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", choices=["duckdb", "sqlite", "postgresql"], default="duckdb")
    parser.add_argument("--url", help="the warehouse URL (default: a file under bench/.cache/, built once)")
    parser.add_argument("--state-url", help="winback's state (default: SQLite beside a file warehouse)")
    parser.add_argument("--start-postgres", action="store_true", help="run on a throwaway local PostgreSQL")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--budget", type=float, default=50_000.0)
    parser.add_argument("--server-running", action="store_true", help="start Prefect's server before the clock")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.warehouse == "postgresql":
        if not args.url and not args.start_postgres:
            parser.error("--warehouse postgresql needs --url or --start-postgres")
        with throwaway_postgres() if args.start_postgres else _nothing() as server:
            warehouse, state = postgres_databases(server) if server else (args.url, args.state_url or args.url)
            build_once(warehouse, args.customers)
            analyze(warehouse)
            run(warehouse, state, "postgresql", args.budget, args.server_running)
        return
    suffix = "duckdb" if args.warehouse == "duckdb" else "db"
    warehouse = args.url or f"{args.warehouse}:///{CACHE / f'warehouse-{args.customers}.{suffix}'}"
    state = args.state_url or f"sqlite:///{CACHE / f'state-{args.warehouse}-{args.customers}.db'}"
    build_once(warehouse, args.customers)
    run(warehouse, state, args.warehouse, args.budget, args.server_running)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
