"""Every flow path with the warehouse in a database of its own, read only: campaign, dispatch, track, report,
the CRM intake of `winback serve` over real HTTP, and the recovery journey with its follow-up.

Flavours: a DuckDB warehouse (opened read_only) with winback's state in SQLite, and a PostgreSQL warehouse read
by a role granted SELECT on the four source tables and nothing else, with winback's state in another
PostgreSQL database. Any write to the warehouse fails the test twice over: the engine refuses it (DuckDB's
read_only, PostgreSQL's grants and read-only transactions), and every statement sent to the warehouse is
recorded and must be a SELECT. The simulated customers' answers are written by the test itself, with the demo's
one writable engine (DuckDB) or the database owner (PostgreSQL), never through winback's reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AS_OF, _new_pg_database, insert_run, select_only_reader
from sqlalchemy import Engine, create_engine, event, func, select, text

from winback.app.demo_data import generate_demo_warehouse, simulate_campaign_response
from winback.app.demo_data.writable import writable_warehouse
from winback.config import CampaignConfig
from winback.warehouse.db import make_engine
from winback.warehouse.migrate import upgrade
from winback.warehouse.models import OutboxMessage
from winback.warehouse.readonly import warehouse_engine_for

CUSTOMERS, SEED = 600, 9
CONFIG = CampaignConfig(campaign_id="apart-paths", budget=1500.0, holdout_share=0.2, batch_size=250)
SECRET = "crm-shared-secret"
NOON = AS_OF.replace(hour=12)


@dataclass
class Apart:
    """winback's state and a separate warehouse; `writer()` is the test's own way to change the warehouse."""

    state_url: str
    warehouse_url: str
    writer: Any  # () -> context manager yielding a writable Engine on the warehouse
    statements: list[str] = field(default_factory=list)

    @property
    def urls(self) -> dict[str, str]:
        return {"database_url_override": self.state_url, "warehouse_url_override": self.warehouse_url}


def _record_statements(apart: Apart) -> None:
    """Every statement winback's reader sends to the warehouse, to check that each is a read."""

    def remember(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        apart.statements.append(statement)

    event.listen(warehouse_engine_for(apart.warehouse_url), "before_cursor_execute", remember)


def _duckdb(tmp_path: Path) -> Apart:
    warehouse_url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    with writable_warehouse(warehouse_url) as writer:
        generate_demo_warehouse(writer, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)
    return Apart(f"sqlite:///{tmp_path / 'state.db'}", warehouse_url, lambda: writable_warehouse(warehouse_url))


def _postgresql(server: str) -> Apart:
    admin_url = _new_pg_database(server)
    admin = create_engine(admin_url)
    generate_demo_warehouse(admin, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)
    reader_url = select_only_reader(admin)

    @contextmanager
    def owner() -> Iterator[Engine]:
        yield admin

    return Apart(_new_pg_database(server), reader_url, owner)


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def apart(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Apart]:
    flavours = {
        "duckdb": lambda: _duckdb(tmp_path),
        "postgresql": lambda: _postgresql(request.getfixturevalue("postgres_server")),
    }
    setup = flavours[request.param]()
    upgrade(setup.state_url)
    _record_statements(setup)
    yield setup
    warehouse_engine_for(setup.warehouse_url).dispose()


def _writes(statements: list[str]) -> list[str]:
    """The statements that are not reads (a read starts with SELECT or WITH)."""
    return [s for s in statements if s.lstrip().split(None, 1)[0].upper() not in ("SELECT", "WITH")]


def _reachable_customers(apart: Apart) -> list[str]:
    """Two reachable London customers with email consent and no flags, read as the test (not winback) reads."""
    with apart.writer() as shop, shop.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.customer_id FROM customers c JOIN consents k ON k.customer_id = c.customer_id "
                    "AND k.channel = 'email' AND k.granted WHERE c.time_zone = 'Europe/London' "
                    "AND c.email LIKE '%@%.%' AND c.email NOT LIKE '% %' AND NOT c.do_not_contact "
                    "AND NOT c.fraud_flag AND (c.preferred_channel IS NULL OR c.preferred_channel = 'email') "
                    "ORDER BY c.customer_id LIMIT 2"
                )
            ).scalars()
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serving(state: Engine, received: list[str]) -> Iterator[str]:
    """`winback serve`'s app under uvicorn on a free port, its CRM hook remembering the event ids."""
    import uvicorn

    from winback.app.server import ServerSettings, create_app

    app = create_app(
        state,
        ServerSettings(public_url="https://hooks.example.com", crm_secret=SECRET),
        on_crm_event=lambda crm_event: received.append(crm_event.event_id),
        clock=lambda: NOON,
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _post_complaint(base: str, customer: str) -> httpx.Response:
    payload = {
        "event_id": "evt-apart-1",
        "type": "complaint.created",
        "customer_id": customer,
        "order_id": "O-77",
        "ticket_id": "T-1",
        "category": "damaged_item",
        "severity": 3,
        "occurred_at": NOON.isoformat(),
        "description": "Box crushed in transit",
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Winback-Signature": signature}
    return httpx.post(f"{base}/crm/events", content=body, headers=headers, timeout=30)


def _journey(state: Engine, customer: str) -> dict[str, str]:
    """The customer's recovery steps → "status:last error"."""
    with state.connect() as conn:
        stmt = select(OutboxMessage.step, OutboxMessage.status, OutboxMessage.last_error).where(
            OutboxMessage.customer_id == customer, OutboxMessage.step.in_(("apology", "follow_up"))
        )
        return {step: f"{status}:{error or ''}" for step, status, error in conn.execute(stmt)}


def test_every_flow_path_reads_a_separate_warehouse_and_never_writes_there(apart: Apart, tmp_path: Path) -> None:
    from winback.flows.campaign import winback_campaign
    from winback.flows.dispatch import dispatch_outbox
    from winback.flows.recover import recover_customer
    from winback.flows.report import retention_report
    from winback.flows.track import track_returns

    state = make_engine(apart.state_url)
    # campaign, then dispatch the next day
    result = winback_campaign(config=CONFIG, as_of=AS_OF, now=AS_OF, **apart.urls)
    assert result["decisions"]["contact"] > 0
    dispatch_outbox(now=AS_OF + dt.timedelta(days=1, hours=8), **apart.urls)
    with state.connect() as conn:
        queued = conn.execute(select(func.count()).where(OutboxMessage.status == "queued")).scalar_one()
        sent = conn.execute(select(func.count()).where(OutboxMessage.status == "sent")).scalar_one()
    assert queued == 0 and sent > 0
    # the customers answer (written by the test), then track and report read them from the warehouse
    with apart.writer() as shop:
        response = simulate_campaign_response(state, result["run_id"], true_lift=0.05, seed=3, warehouse=shop)
    assert response.orders_inserted > 0
    tracked = track_returns(run_id=result["run_id"], now=AS_OF + dt.timedelta(days=31), **apart.urls)
    assert tracked["tracked"][result["run_id"]] == result["decisions"]["contact"] + result["decisions"]["holdout"]
    report = retention_report(config=CONFIG, run_id=result["run_id"], out_dir=str(tmp_path / "r"), **apart.urls)
    overall = report["overall"][0]
    assert (overall["n_treated"], overall["n_holdout"]) == (
        result["decisions"]["contact"],
        result["decisions"]["holdout"],
    )

    # a complaint over real HTTP to `winback serve`'s app, then the recovery it triggers
    customer = _reachable_customers(apart)[0]
    received: list[str] = []
    with _serving(state, received) as base:
        answer = _post_complaint(base, customer)
    assert answer.status_code == 202, answer.text
    assert received == ["evt-apart-1"]
    recovered = recover_customer("evt-apart-1", now=NOON, **apart.urls)
    assert recovered["action"] == "contact", recovered.get("reason")
    journey = _journey(state, customer)
    assert journey["apology"].startswith("sent") and journey["follow_up"].startswith("queued")
    # the customer comes back; the follow-up a week later stops, checked in the claim's one warehouse query
    with apart.writer() as shop, shop.begin() as conn:
        conn.execute(
            text("INSERT INTO orders (order_id, customer_id, ordered_at, amount) VALUES ('BACK-1', :c, :t, 20)"),
            {"c": customer, "t": NOON + dt.timedelta(days=2)},
        )
    dispatch_outbox(now=NOON + dt.timedelta(days=8), **apart.urls)
    assert _journey(state, customer)["follow_up"] == "skipped:customer returned: journey stopped"

    assert apart.statements, "winback read nothing through the warehouse's engine"
    assert _writes(apart.statements) == []
    state.dispose()


def test_the_warehouse_refuses_a_write_from_winbacks_reader(apart: Apart) -> None:
    """The guarantee does not rest on winback's good behaviour: its reader cannot write there at all."""
    reader: AbstractContextManager[Any] = warehouse_engine_for(apart.warehouse_url).begin()
    with pytest.raises(Exception, match=r"read-only|read only|permission denied"), reader as conn:
        conn.execute(text("DELETE FROM orders"))


def test_a_claim_with_journey_follow_ups_reads_the_warehouse_once(apart: Apart) -> None:
    """Consent and flags, and the "ordered again" stop of the follow-ups: one warehouse query for the claim."""
    from winback.delivery.checks import checked_at_send_time
    from winback.warehouse.journeys import returned_customers
    from winback.warehouse.source import SourceMapping, SourceTables

    state = make_engine(apart.state_url)
    src = SourceTables(SourceMapping(), warehouse_url=apart.warehouse_url)
    back, waiting = _reachable_customers(apart)
    with state.begin() as conn:
        run_id = insert_run(conn, "crm-recovery", NOON, status="started", journey_key="T-1")
    with apart.writer() as shop, shop.begin() as conn:
        conn.execute(
            text("INSERT INTO orders (order_id, customer_id, ordered_at, amount) VALUES ('BACK-1', :c, :t, 20)"),
            {"c": back, "t": NOON + dt.timedelta(days=2)},
        )
    rows = [
        {"id": f"{step}-{customer}", "customer_id": customer, "channel": "email", "step": step, "run_id": run_id}
        for customer in (back, waiting)
        for step in ("apology", "follow_up")
    ] + [{"id": "gone", "customer_id": "NOBODY", "channel": "email", "step": "follow_up", "run_id": run_id}]
    with warehouse_engine_for(apart.warehouse_url).connect():
        pass  # the dialect's first-connect queries are not the claim's
    apart.statements.clear()
    blocked = checked_at_send_time(state, src, rows, returned_customers(state, src))
    assert len(apart.statements) == 1, apart.statements
    assert blocked == {
        f"follow_up-{back}": "customer returned: journey stopped",
        "gone": "customer erased: not in the customers table at send time",
    }
    apart.statements.clear()  # the check on its own (no send-time source) still reads the orders in one query
    assert returned_customers(state, src)(rows) == {f"follow_up-{back}": "customer returned: journey stopped"}
    assert len(apart.statements) == 1
    state.dispose()


def test_a_flow_finds_the_warehouse_beside_the_state_it_is_given(tmp_path: Path) -> None:
    """`x.db` → `x-warehouse.duckdb` beside it when that file is there; an explicit warehouse URL wins."""
    from winback.settings import Settings
    from winback.warehouse.source import SourceTables

    settings = Settings.from_mapping({})
    state = f"sqlite:///{tmp_path / 'demo.db'}"
    assert SourceTables.from_settings(settings, database_url=state).warehouse_url is None  # nothing beside it
    (tmp_path / "demo-warehouse.duckdb").touch()
    beside = f"duckdb:///{tmp_path / 'demo-warehouse.duckdb'}"
    assert SourceTables.from_settings(settings, database_url=state).warehouse_url == beside
    assert Settings.from_mapping({"WINBACK_DATABASE_URL": state}).warehouse_url == beside
    named = SourceTables.from_settings(settings, database_url=state, warehouse_url="duckdb:///elsewhere.duckdb")
    assert named.warehouse_url == "duckdb:///elsewhere.duckdb"
    assert SourceTables.from_settings(settings, database_url=state, warehouse_url=state).warehouse_url is None
