"""`POST /crm/events`: signed, validated, recorded once, handed to the hook once (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from winback.app.server import ServerSettings, create_app, emit_prefect_crm_event
from winback.stages.recovery import load_event
from winback.warehouse.crm import CrmEventIn
from winback.warehouse.models import CrmEvent

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
SECRET = "crm-shared-secret"
EVENT = {
    "event_id": "evt-1001",
    "type": "complaint.created",
    "customer_id": "c-42",
    "order_id": "o-7",
    "category": "late_delivery",
    "severity": 4,
    "occurred_at": "2026-11-01T16:30:00+01:00",
    "description": "Parcel arrived a week late",
    "ticket_id": "T-9",
}


class Recorder:
    """A CRM hook that remembers what it was given (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[CrmEventIn] = []
        self.fail = fail

    def __call__(self, event: CrmEventIn) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("prefect API unreachable")


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_client(engine: Engine, hook: Recorder, **overrides: Any) -> TestClient:
    cfg = ServerSettings(**{"public_url": "https://hooks.example.com", "crm_secret": SECRET, **overrides})
    return TestClient(create_app(engine, cfg, on_crm_event=hook, clock=lambda: NOW))


def post(client: TestClient, payload: Any, *, signature: str | None = "auto", raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Winback-Signature"] = sign(body)
    elif signature is not None:
        headers["X-Winback-Signature"] = signature
    return client.post("/crm/events", content=body, headers=headers)


def recorded(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(CrmEvent)).scalar_one()


def test_signed_event_is_accepted_recorded_and_handed_to_the_hook(engine: Engine) -> None:
    hook = Recorder()
    response = post(make_client(engine, hook), EVENT)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "event_id": "evt-1001"}
    assert len(hook.events) == 1
    event = hook.events[0]
    assert (event.event_id, event.type, event.customer_id, event.severity) == (
        "evt-1001",
        "complaint.created",
        "c-42",
        4,
    )
    assert event.occurred_at == dt.datetime(2026, 11, 1, 15, 30, tzinfo=dt.UTC)
    with engine.connect() as conn:
        row = conn.execute(select(CrmEvent.__table__)).one()
    assert (row.event_id, row.type, row.customer_id) == ("evt-1001", "complaint.created", "c-42")
    # what the recovery flow reads back
    stored = load_event(engine, "evt-1001")
    assert stored["category"] == "late_delivery" and stored["ticket_id"] == "T-9"
    assert dt.datetime.fromisoformat(stored["occurred_at"]) == dt.datetime(2026, 11, 1, 15, 30, tzinfo=dt.UTC)


def test_duplicate_event_is_one_recovery(engine: Engine) -> None:
    hook = Recorder()
    client = make_client(engine, hook)
    assert post(client, EVENT).status_code == 202
    again = post(client, {**EVENT, "severity": 5})  # a redelivery, even an altered one, is the same event
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": "evt-1001"}
    assert len(hook.events) == 1
    assert recorded(engine) == 1
    assert load_event(engine, "evt-1001")["severity"] == 4


def test_minimal_event_and_extra_fields(engine: Engine) -> None:
    hook = Recorder()
    minimal = {
        "event_id": "evt-2",
        "type": "ticket.closed",
        "customer_id": "c-1",
        "category": "outage",
        "channel_hint": "email",
    }
    assert post(make_client(engine, hook), minimal).status_code == 202
    stored = load_event(engine, "evt-2")
    assert stored["channel_hint"] == "email" and stored["severity"] is None


@pytest.mark.parametrize("type_", ["complaint.created", "ticket.updated", "ticket.closed", "complaint.resolved"])
@pytest.mark.parametrize("category", ["left out", None])
def test_complaint_or_ticket_event_without_category_is_422(engine: Engine, type_: str, category: str | None) -> None:
    """(Was a bug: accepted with 202, then recovery could only have sent a generic apology, which it refuses,
    and the hourly sweeper retried the event forever.)"""
    hook = Recorder()
    payload = {"event_id": "E-nocat", "type": type_, "customer_id": "c-42", "order_id": "O-77", "severity": 5}
    if category is None:
        payload["category"] = None
    response = post(make_client(engine, hook), payload)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "category", "problem": f"required for {type_} events: every recovery message names what went wrong"}
    ]
    assert recorded(engine) == 0 and hook.events == []


def test_other_events_need_no_category(engine: Engine) -> None:
    """They start no recovery journey (winback.recovery marks them ignored), so nothing needs naming."""
    note = {"event_id": "evt-3", "type": "customer.note_added", "customer_id": "c-1"}
    assert post(make_client(engine, Recorder()), note).status_code == 202
    assert load_event(engine, "evt-3")["category"] is None


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=abc",
        "sha256",
        "__other_secret__",
        "__other_body__",
    ],
)
def test_missing_or_wrong_signature_is_401_and_nothing_recorded(engine: Engine, signature: str | None) -> None:
    hook = Recorder()
    body = json.dumps(EVENT).encode()
    if signature == "__other_secret__":
        signature = sign(body, "guessed")
    elif signature == "__other_body__":
        signature = sign(json.dumps({**EVENT, "customer_id": "c-43"}).encode())
    response = post(make_client(engine, hook), None, raw=body, signature=signature)
    assert response.status_code == 401
    assert recorded(engine) == 0
    assert hook.events == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"severity": 6}, "severity"),
        ({"severity": 0}, "severity"),
        ({"severity": "3"}, "severity"),
        ({"severity": 2.5}, "severity"),
        ({"category": "bad_weather"}, "category"),
        ({"event_id": None}, "event_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"type": "Complaint Created"}, "type"),
        ({"occurred_at": "2026-11-01T16:30:00"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"event_id": "e\x00x"}, "event_id"),  # PostgreSQL text cannot hold NUL: 422, not a 500 at insert
        ({"description": "box\x00crushed"}, "description"),
    ],
)
def test_invalid_event_is_422_naming_the_field(engine: Engine, change: dict[str, Any], field: str) -> None:
    hook = Recorder()
    payload = {k: v for k, v in {**EVENT, **change}.items() if v is not None}
    response = post(make_client(engine, hook), payload)
    assert response.status_code == 422
    fields = [p["field"] for p in response.json()["detail"]]
    assert field in fields
    assert all(p["problem"] for p in response.json()["detail"])
    assert recorded(engine) == 0 and hook.events == []


def test_several_missing_fields_are_all_named(engine: Engine) -> None:
    response = post(make_client(engine, Recorder()), {"type": "ticket.updated"})
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["detail"]} == {"event_id", "customer_id", "category"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_body_that_is_not_a_json_object_is_422(engine: Engine, raw: bytes) -> None:
    response = post(make_client(engine, Recorder()), None, raw=raw)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body"
    assert recorded(engine) == 0


def test_hook_failure_keeps_the_recorded_event(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    hook = Recorder(fail=True)
    client = make_client(engine, hook)
    with caplog.at_level(logging.WARNING, logger="winback.app.server"):
        response = post(client, EVENT)
    assert response.status_code == 202
    assert recorded(engine) == 1
    assert any("hook failed" in r.getMessage() for r in caplog.records)
    assert post(client, EVENT).json()["status"] == "duplicate"
    assert len(hook.events) == 1


def test_unconfigured_secret_answers_503(engine: Engine) -> None:
    response = post(make_client(engine, Recorder(), crm_secret=None), EVENT, signature=sign(b"x"))
    assert response.status_code == 503
    assert recorded(engine) == 0


def test_oversized_body_is_413(engine: Engine) -> None:
    big = {**EVENT, "description": "x" * 5000}
    response = post(make_client(engine, Recorder(), max_body_bytes=4096), big)
    assert response.status_code == 413
    assert recorded(engine) == 0


def test_default_hook_emits_the_prefect_event_the_deployment_triggers_on(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.events

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: calls.append(kw) or object())
    emit_prefect_crm_event(CrmEventIn.model_validate(EVENT))
    assert len(calls) == 1
    call = calls[0]
    assert call["event"] == "winback.crm.complaint.created"
    assert call["resource"] == {"prefect.resource.id": "winback.crm-event.evt-1001", "winback.customer-id": "c-42"}
    assert call["payload"]["severity"] == 4 and "description" not in call["payload"]


def test_default_hook_failure_does_not_fail_the_request(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.events

    def broken(**kw: Any) -> None:
        raise ConnectionError("no Prefect API")

    monkeypatch.setattr(prefect.events, "emit_event", broken)
    cfg = ServerSettings(crm_secret=SECRET)
    client = TestClient(create_app(engine, cfg, clock=lambda: NOW))
    assert post(client, EVENT).status_code == 202
    assert recorded(engine) == 1


def test_a_database_that_refuses_is_one_log_line_and_a_503(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """No winback tables (never `db upgrade`d): the CRM retries on 503; the log says why in one line."""
    from winback.warehouse.db import make_engine

    bare = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    client = TestClient(create_app(bare, ServerSettings(crm_secret=SECRET), on_crm_event=Recorder()))
    with caplog.at_level(logging.ERROR, logger="winback.app.server"):
        response = post(client, EVENT)
    assert (response.status_code, response.json()) == (503, {"detail": "temporarily unavailable"})
    [line] = [r for r in caplog.records if r.name == "winback.app.server" and r.levelno >= logging.ERROR]
    assert line.getMessage().startswith("POST /crm/events failed: no such table: wb_crm_events")
    assert line.exc_info is None and "Traceback" not in capsys.readouterr().err
