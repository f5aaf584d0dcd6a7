"""Benchmark: complaint-to-apology latency through `winback serve`, a real Prefect server, the event trigger,
a process worker and the recover-customer flow.

    .venv/bin/python bench/recovery_latency.py [--complaints 10]

Starts everything on 127.0.0.1 (a throwaway PREFECT_HOME and a 2,000-customer demo warehouse), deploys
from prefect.yaml, runs one polling worker (PREFECT_WORKER_QUERY_SECONDS=1), posts signed complaints one
at a time and waits for each apology to be sent (status `sent` in the outbox, or `queued` for the
recipient's morning: quiet hours are a choice, not latency). Last line: p50_s=… p95_s=… max_s=… n=…
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-crm-secret"
REACHABLE = (  # customers an apology can reach by email: consent granted, a well-formed address, no flags
    "SELECT c.customer_id FROM customers c JOIN consents k ON k.customer_id = c.customer_id "
    "AND k.channel = 'email' AND k.granted WHERE c.email LIKE '%@%.%' AND c.email NOT LIKE '% %' "
    "AND NOT c.do_not_contact AND NOT c.fraud_flag ORDER BY c.customer_id LIMIT :n"
)
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} never became healthy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--complaints", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="winback-latency-"))
    db = f"sqlite:///{work / 'bench.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING", PATH=f"{BIN}:{env.get('PATH', '')}", WINBACK_HOME=str(REPO),
        PREFECT_WORKER_QUERY_SECONDS="1", WINBACK_DATABASE_URL=db, WINBACK_CRM_SECRET=SECRET,
        WINBACK_SINK_PATH=str(work / "sink.jsonl"),
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        from sqlalchemy import text

        from winback.app.demo_data import generate_demo_warehouse
        from winback.warehouse.db import make_engine
        from winback.warehouse.migrate import upgrade

        engine = make_engine(db)
        upgrade(db, engine=engine)
        generate_demo_warehouse(engine, customers=2000, seed=5, as_of=dt.datetime.now(dt.UTC), replace=True)
        with engine.connect() as conn:
            customers = conn.execute(
                text(REACHABLE),
                {"n": args.complaints},
            ).scalars().all()  # fmt: skip

        port = free_port()
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        procs.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                       str(port)], env=env, cwd=work, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))  # fmt: skip
        wait_ok(f"http://127.0.0.1:{port}/api/health")
        for cmd in (["work-pool", "create", "winback-process", "--type", "process", "--overwrite"],
                    ["--no-prompt", "deploy", "--all"]):  # fmt: skip
            subprocess.run([str(BIN / "prefect"), *cmd], env=env, cwd=REPO, check=True, capture_output=True)
        procs.append(
            subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", "winback-process"],
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        intake = free_port()
        procs.append(subprocess.Popen([str(BIN / "winback"), "serve", "--port", str(intake)], env=env, cwd=work,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        wait_ok(f"http://127.0.0.1:{intake}/healthz")

        latencies = []
        for i, customer in enumerate(customers):
            body = json.dumps({
                "event_id": f"bench-{i}", "type": "complaint.created", "customer_id": customer,
                "order_id": f"O-B{i}", "category": "late_delivery", "severity": 3,
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(), "description": "Late parcel",
            }).encode()  # fmt: skip
            sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            start = time.monotonic()
            resp = httpx.post(f"http://127.0.0.1:{intake}/crm/events", content=body,
                              headers={"X-Winback-Signature": sig, "Content-Type": "application/json"})  # fmt: skip
            resp.raise_for_status()
            while True:
                with engine.connect() as conn:
                    status = conn.execute(
                        text("SELECT status FROM wb_outbox WHERE customer_id = :c AND step = 'apology'"),
                        {"c": customer},
                    ).scalar_one_or_none()
                if status in ("sent", "queued", "skipped"):
                    break
                if time.monotonic() - start > 300:
                    raise SystemExit(f"complaint {i}: no apology after 300 s")
                time.sleep(0.2)
            latencies.append(time.monotonic() - start)
            print(f"complaint {i}: apology {status} after {latencies[-1]:.1f} s", flush=True)
        q = statistics.quantiles(latencies, n=20, method="inclusive")
        p50, p95 = statistics.median(latencies), q[18]
        print(f"p50_s={p50:.1f} p95_s={p95:.1f} max_s={max(latencies):.1f} n={len(latencies)}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
