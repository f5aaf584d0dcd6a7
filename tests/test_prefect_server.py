"""A real `prefect server` and process worker on 127.0.0.1: deploy from prefect.yaml and run a deployment."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AS_OF
from sqlalchemy import Engine, func, select

from winback.warehouse.models import CampaignRun, OutboxMessage

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh Prefect server (its own PREFECT_HOME and SQLite) and the environment that talks to it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING",
        PATH=f"{BIN}:{env.get('PATH', '')}",
        WINBACK_HOME=str(REPO),
        PREFECT_WORKER_QUERY_SECONDS="1",
    )
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail("prefect server did not become healthy:\n" + (home / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    env["PREFECT_API_URL"] = api
    try:
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the server is the subject here, not the warehouse
def test_deployment_runs_on_a_real_server_and_worker(
    prefect_server: dict[str, str], demo_engine: Engine, tmp_path: Path
) -> None:
    env = {**prefect_server, "WINBACK_SINK_PATH": str(tmp_path / "sink.jsonl")}
    url = demo_engine.url.render_as_string(hide_password=False)
    _prefect(env, "work-pool", "create", "winback-process", "--type", "process", "--overwrite")
    deployed = _prefect(env, "--no-prompt", "deploy", "--all", timeout=180)
    assert "weekly-winback" in deployed.stdout
    params = {"database_url_override": url, "as_of": AS_OF.isoformat(), "now": AS_OF.isoformat()}
    args = [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
    started = _prefect(env, "deployment", "run", "winback-campaign/weekly-winback", *args)
    flow_run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", started.stdout)
    assert flow_run_id, started.stdout
    _prefect(env, "worker", "start", "--pool", "winback-process", "--run-once", timeout=300)
    with demo_engine.connect() as conn:
        run = conn.execute(select(CampaignRun).where(CampaignRun.campaign_id == "weekly-winback")).first()
        sent = conn.execute(select(func.count()).where(OutboxMessage.status == "sent")).scalar_one()
    assert run is not None, "the deployment's flow run never reached the database"
    assert sent > 0
    inspected = _prefect(env, "flow-run", "inspect", flow_run_id.group(1))
    assert "StateType.COMPLETED" in inspected.stdout


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"{url} did not become healthy")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_signed_complaint_triggers_the_recovery_deployment(
    prefect_server: dict[str, str], demo_engine: Engine, tmp_path: Path
) -> None:
    """CRM → `winback serve` → Prefect event → trigger → process worker → apology in the outbox."""
    import hashlib
    import hmac

    import httpx
    from sqlalchemy import text

    url = demo_engine.url.render_as_string(hide_password=False)
    env = {**prefect_server, "WINBACK_SINK_PATH": str(tmp_path / "sink.jsonl"), "WINBACK_DATABASE_URL": url,
           "WINBACK_CRM_SECRET": "crm-test-secret"}  # fmt: skip
    _prefect(env, "work-pool", "create", "winback-process", "--type", "process", "--overwrite")
    _prefect(env, "--no-prompt", "deploy", "--all", timeout=180)
    with demo_engine.connect() as conn:
        customer = conn.execute(
            text(
                "SELECT c.customer_id FROM customers c JOIN consents k ON k.customer_id = c.customer_id "
                "AND k.channel = 'email' AND k.granted WHERE c.email LIKE '%@%.%' AND c.email NOT LIKE '% %' "
                "AND NOT c.do_not_contact AND NOT c.fraud_flag ORDER BY c.customer_id LIMIT 1"
            )
        ).scalar_one()
    port = _free_port()
    server = subprocess.Popen([str(BIN / "winback"), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", server)
        body = json.dumps({
            "event_id": "crm-evt-1", "type": "complaint.created", "customer_id": customer, "order_id": "O-1",
            "category": "late_delivery", "severity": 4, "occurred_at": AS_OF.isoformat(),
            "description": "Parcel six days late",
        }).encode()  # fmt: skip
        signature = "sha256=" + hmac.new(b"crm-test-secret", body, hashlib.sha256).hexdigest()
        posted = httpx.post(f"http://127.0.0.1:{port}/crm/events", content=body,
                            headers={"X-Winback-Signature": signature, "Content-Type": "application/json"})  # fmt: skip
        assert posted.status_code == 202, posted.text
        deadline = time.monotonic() + 120
        queued = 0
        while time.monotonic() < deadline and not queued:
            _prefect(env, "worker", "start", "--pool", "winback-process", "--run-once", timeout=300)
            with demo_engine.connect() as conn:
                queued = conn.execute(
                    select(func.count()).where(OutboxMessage.customer_id == customer, OutboxMessage.step == "apology")
                ).scalar_one()
        assert queued == 1, "the trigger never ran recover-customer for the complaint"
    finally:
        server.terminate()
        server.wait(timeout=20)
