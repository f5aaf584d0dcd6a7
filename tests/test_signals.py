"""Stopping winback with SIGTERM or SIGINT stops the temporary Prefect server it started: nothing is left running.

(Was a bug: SIGTERM killed `winback serve` without its exit handlers, and Prefect stops its temporary server,
a uvicorn child process, in one of them; the server was left running, orphaned.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import AS_OF

from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.server  # starts a temporary Prefect server (seconds)
SECRET = "crm-signal-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_serve_stops_its_temporary_prefect_server(tmp_path: Path, sig: signal.Signals) -> None:
    url = f"sqlite:///{tmp_path / 'wb.db'}"
    upgrade(url, engine=make_engine(url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(WINBACK_DATABASE_URL=url, WINBACK_CRM_SECRET=SECRET, PREFECT_HOME=str(tmp_path / "prefect"),
               PREFECT_LOGGING_LEVEL="WARNING")  # fmt: skip
    port = _free_port()
    serve = subprocess.Popen([str(BIN / "winback"), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    prefect_server = None
    try:
        _until(lambda: _healthy(port), 60, "winback serve")
        event = {"event_id": "E-sig", "type": "complaint.created", "customer_id": "C1", "category": "late_delivery",
                 "severity": 3, "occurred_at": AS_OF.isoformat()}  # fmt: skip
        body = json.dumps(event).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        posted = httpx.post(f"http://127.0.0.1:{port}/crm/events", content=body,
                            headers={"X-Winback-Signature": signature, "Content-Type": "application/json"},
                            timeout=90)  # fmt: skip
        assert posted.status_code == 202, posted.text
        # the event goes to Prefect, which starts its temporary server as a child of `winback serve`
        prefect_server = _until(
            lambda: next((p for p in _children(serve.pid) if "prefect.server.api.server" in _cmdline(p)), None),
            90,
            "the temporary Prefect server",
        )
        serve.send_signal(sig)
        serve.wait(timeout=60)
        _until(lambda: not _running(prefect_server), 15, "the temporary Prefect server to stop")
    finally:
        leftovers = {prefect_server} if prefect_server else set()
        if serve.poll() is None:
            leftovers |= set(_children(serve.pid))
            serve.kill()
            serve.wait()
        for pid in leftovers:  # the test's own processes, by their ids
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
