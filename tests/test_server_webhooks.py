"""`winback serve`: provider webhooks and one-click unsubscribe, over HTTP, on SQLite and PostgreSQL.

Requests are signed the way the providers sign them: SendGrid with a real ECDSA P-256 key over
`timestamp + body`, Twilio with the SDK's RequestValidator over the public URL and the form params.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import insert_run, public_b64, sendgrid_signature
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, func, insert, select
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from winback.app.server import ServerSettings, create_app
from winback.channels.webhooks import START_KEYWORDS, STOP_KEYWORDS, sms_keyword
from winback.delivery.events import reconcile_unknown_from_events
from winback.messages.unsubscribe import UnsubscribeLinks
from winback.warehouse.models import CampaignRun, MessageEvent, OutboxMessage, Suppression
from winback.warehouse.suppressions import lift_suppression, suppress
from winback.warehouse.timeutil import utc

NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
PUBLIC = "https://hooks.example.com/winback"  # behind a proxy that strips /winback
TOKEN = "twilio-auth-token-for-tests"
BRAND = "Northwind Goods"
SID = "SM" + "a" * 32


# ---------------------------------------------------------------- keys, signing, data


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, at: dt.datetime = NOW) -> dict[str, str]:
    """The Event Webhook's signature headers, as SendGrid sends them."""
    ts = str(int(at.timestamp()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(private, ts, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        "Content-Type": "application/json",
    }


def twilio_post(
    client: TestClient,
    path: str,
    params: dict[str, str],
    *,
    token: str = TOKEN,
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a form signed by Twilio for the public URL (path and query included)."""
    url = signed_url or PUBLIC + path
    signature = RequestValidator(token).compute_signature(url, params)
    return client.post(
        path,
        content=urlencode(params),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
            **(headers or {}),
        },
    )


def settings(key: ec.EllipticCurvePrivateKey | None = None, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "public_url": PUBLIC,
        "sendgrid_webhook_public_key": public_b64(key) if key else None,
        "twilio_auth_token": TOKEN,
        "crm_secret": "crm-secret",
        "brand_name": BRAND,
    }
    values.update(overrides)
    return ServerSettings(**values)


def client_for(engine: Engine, cfg: ServerSettings) -> TestClient:
    return TestClient(create_app(engine, cfg, on_crm_event=lambda event: None, clock=lambda: NOW))


# outbox rows: id -> (customer, channel, to_address, status, provider, provider_message_id, locale)
ROWS: dict[str, tuple[str, str, str, str, str | None, str | None, str]] = {
    "e1": ("c-1", "email", "jane@example.com", "sent", "sendgrid", "x-1", "en_GB"),
    "e2": ("c-2", "email", "li@example.com", "sent", "sendgrid", "x-2", "en_GB"),
    "e3": ("c-3", "email", "ann@example.com", "unknown", None, None, "en_GB"),
    "e4": ("c-4", "email", "bo@example.com", "sent", "sendgrid", "x-4", "en_GB"),
    "e5": ("c-5", "email", "cy@example.com", "sent", "sendgrid", "x-5", "en_GB"),
    "e6": ("c-6", "email", "di@example.com", "sent", "sendgrid", "x-6", "en_GB"),
    "e7": ("c-7", "email", "ed@example.com", "sent", "sendgrid", "x-7", "en_GB"),
    "s1": ("c-11", "sms", "+447911123456", "sent", "twilio", SID, "en_GB"),
    "s2": ("c-12", "sms", "07911 123457", "sent", "twilio", "SM" + "b" * 32, "en_GB"),  # national format
    "s3": ("c-13", "sms", "+447911123458", "unknown", None, None, "en_GB"),
}


@pytest.fixture
def db(engine: Engine) -> Engine:
    """A campaign, a run and the outbox rows above."""
    with engine.begin() as conn:
        run_id = insert_run(conn, "weekly", NOW)
        for n, (oid, (cid, channel, to, status, provider, pmid, locale)) in enumerate(ROWS.items()):
            add_outbox(
                conn,
                run_id,
                oid,
                cid,
                channel,
                to,
                status,
                provider,
                pmid,
                locale,
                NOW - dt.timedelta(hours=1, minutes=n),
            )
    return engine


def add_outbox(
    conn: Any,
    run_id: int,
    oid: str,
    cid: str,
    channel: str,
    to: str,
    status: str,
    provider: str | None,
    pmid: str | None,
    locale: str,
    created: dt.datetime,
) -> None:
    sent = status == "sent"
    conn.execute(
        insert(OutboxMessage).values(
            id=oid,
            run_id=run_id,
            customer_id=cid,
            step="winback",
            channel=channel,
            template="winback",
            to_address=to,
            context={"locale": locale},
            subject=None,
            body_text=None,
            status=status,
            provider=provider,
            provider_message_id=pmid,
            attempts=1,
            claimed_by=None,
            last_error=None,
            not_before=created,
            created_at=created,
            sent_at=created if sent else None,
        )
    )


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a webhook may change; compared before/after a refused request."""
    with engine.connect() as conn:
        return {
            "events": sorted(conn.execute(select(MessageEvent.event_key)).scalars()),
            "suppressions": sorted(
                conn.execute(
                    select(Suppression.customer_id, Suppression.channel, Suppression.reason, Suppression.source)
                ).all()
            ),
            "outbox": sorted(
                conn.execute(select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.provider_message_id)).all()
            ),
        }


def suppressions(engine: Engine) -> dict[tuple[str, str], tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Suppression.customer_id, Suppression.channel, Suppression.reason, Suppression.source)
        ).all()
    return {(c, ch): (r, s) for c, ch, r, s in rows}


def outbox_row(engine: Engine, oid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(OutboxMessage.__table__).where(OutboxMessage.id == oid)).one()


def event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(MessageEvent)).scalar_one()


def sg(event: str, oid: str | None, n: int, **extra: Any) -> dict[str, Any]:
    """A SendGrid event as the Event Webhook posts it: custom args are top-level keys."""
    item: dict[str, Any] = {
        "email": "someone@example.com",
        "timestamp": int(NOW.timestamp()) - 60,
        "event": event,
        "sg_event_id": f"evt-{event}-{oid}-{n}",
        "sg_message_id": f"x-{n}.filterdrecv-1-2-3.0",
    }
    if oid:
        cid = ROWS[oid][0] if oid in ROWS else "c-x"
        item.update(winback_message_id=oid, campaign_id="weekly", customer_id=cid)
    item.update(extra)
    return item


BATCH = [
    sg("processed", "e1", 1),
    sg("delivered", "e1", 2),
    sg("open", "e1", 3),
    sg("click", "e1", 4, url="https://shop.example.com/"),
    sg("bounce", "e1", 5, type="bounce", reason="550 5.1.1 unknown user"),
    sg("spamreport", "e2", 6),
    sg("unsubscribe", "e4", 7),
    sg("group_unsubscribe", "e5", 8, asm_group_id=42),
    sg("bounce", "e6", 9, type="blocked", reason="421 try later"),
    sg("deferred", "e7", 10),
    sg("dropped", "e7", 11, reason="Bounced Address"),
    sg("delivered", None, 12),  # not ours: sent by something else on the same account
]
BATCH_BODY = json.dumps(BATCH).encode()


# ---------------------------------------------------------------- basics


def test_healthz(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    response = client_for(db, settings(key)).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_settings_from_env(key: ec.EllipticCurvePrivateKey) -> None:
    cfg = ServerSettings.from_env(
        {
            "WINBACK_PUBLIC_URL": "https://hooks.example.com/",
            "WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY": public_b64(key),
            "TWILIO_AUTH_TOKEN": "t",
            "WINBACK_CRM_SECRET": "s",
            "WINBACK_BRAND_NAME": "Acme",
            "WINBACK_MAX_BODY_BYTES": "2048",
        }
    )
    assert cfg.public_url == "https://hooks.example.com"
    assert (cfg.twilio_auth_token, cfg.crm_secret, cfg.brand_name, cfg.max_body_bytes) == ("t", "s", "Acme", 2048)
    assert "crm_secret" not in repr(cfg) and "twilio_auth_token" not in repr(cfg)
    empty = ServerSettings.from_env({})
    assert empty.sendgrid_webhook_public_key is None and empty.public_url == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="public key"):
        ServerSettings.from_env({"WINBACK_SENDGRID_WEBHOOK_PUBLIC_KEY": "not-a-key"})
    with pytest.raises(ValueError, match="http"):
        ServerSettings(public_url="hooks.example.com")


def test_sms_keywords_are_whole_body_trimmed_and_case_insensitive() -> None:
    assert sms_keyword("  stop \n") == "stop"
    assert sms_keyword("Unstop") == "start"
    assert sms_keyword("help") == "help"
    assert sms_keyword("please stop") is None
    assert sms_keyword("STOP.") is None
    assert sms_keyword(None) is None


# ---------------------------------------------------------------- SendGrid


def test_sendgrid_signed_batch_records_events_and_suppresses(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    response = client.post("/webhooks/sendgrid/events", content=BATCH_BODY, headers=sendgrid_headers(key, BATCH_BODY))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 11,
        "new": 11,
        "duplicate": 0,
        "unmatched": 0,
        "reconciled": 0,
        "suppressed": 4,
    }
    assert suppressions(db) == {
        ("c-1", "email"): ("bounce", "sendgrid event webhook"),
        ("c-2", "email"): ("spamreport", "sendgrid event webhook"),
        ("c-4", "email"): ("unsubscribe", "sendgrid event webhook"),
        ("c-5", "email"): ("unsubscribe", "sendgrid event webhook"),
    }  # a soft bounce (blocked), deferred and dropped suppress nobody
    with db.connect() as conn:
        events = {r.event_key: r for r in conn.execute(select(MessageEvent))}
    assert events["sendgrid:evt-bounce-e1-5"].event_type == "bounce"
    assert events["sendgrid:evt-bounce-e6-9"].event_type == "blocked"
    assert events["sendgrid:evt-open-e1-3"].outbox_id == "e1"
    assert utc(events["sendgrid:evt-open-e1-3"].occurred_at) == NOW - dt.timedelta(seconds=60)
    assert events["sendgrid:evt-click-e1-4"].payload["email"] == "s***@example.com"  # stored masked
    # what happened at send stays: events are facts about the message, not a new send status
    assert {outbox_row(db, oid).status for oid in ("e1", "e2", "e4", "e5", "e6", "e7")} == {"sent"}


def test_sendgrid_payload_keeps_no_address_in_any_field(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    """A bounce reason, a click URL (plain or percent-encoded) and nested values are redacted like `email`."""
    events = [
        sg("bounce", "e1", 30, type="bounce",
           reason="550 5.1.1 <jane.doe@example.com>: Recipient address rejected; call +447911123456"),
        sg("click", "e1", 31, url="https://shop.example.com/back?utm_source=wb&email=jane.doe@example.com"),
        sg("click", "e1", 32, url="https://shop.example.com/back?e=jane.doe%40example.com&x=1",
           category=["winback", "to jane.doe@example.com"], extra={"note": ["reply to jane.doe@example.com"]}),
    ]  # fmt: skip
    body = json.dumps(events).encode()
    response = client_for(db, settings(key)).post(
        "/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(key, body)
    )
    assert response.json()["new"] == 3
    with db.connect() as conn:
        stored = {r.event_key: r.payload for r in conn.execute(select(MessageEvent))}
    assert "jane.doe" not in json.dumps(stored) and "+447911123456" not in json.dumps(stored)
    bounce, click, encoded = (stored[f"sendgrid:evt-{kind}-e1-{n}"] for kind, n in [("bounce", 30), ("click", 31),
                                                                                    ("click", 32)])  # fmt: skip
    assert bounce["reason"] == "550 5.1.1 <j***@example.com>: Recipient address rejected; call +4479*****56"
    assert click["url"] == "https://shop.example.com/back?utm_source=wb&email=j***@example.com"
    assert encoded["url"] == "https://shop.example.com/back?e=j***%40example.com&x=1"
    assert encoded["category"] == ["winback", "to j***@example.com"]
    assert encoded["extra"] == {"note": ["reply to j***@example.com"]}
    assert bounce["email"] == "s***@example.com"
    # what identifies the event is kept as sent
    assert (bounce["winback_message_id"], bounce["customer_id"], bounce["sg_event_id"], bounce["timestamp"]) == (
        "e1", "c-1", "evt-bounce-e1-30", int(NOW.timestamp()) - 60,
    )  # fmt: skip
    assert bounce["sg_message_id"] == "x-30.filterdrecv-1-2-3.0"


def test_sendgrid_redelivery_is_idempotent(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    first = client.post("/webhooks/sendgrid/events", content=BATCH_BODY, headers=sendgrid_headers(key, BATCH_BODY))
    assert first.json()["new"] == 11
    before = snapshot(db)
    with db.begin() as conn:  # the customer opted back in meanwhile: a redelivered bounce must not undo it
        lift_suppression(conn, "c-1", "email")
    later = NOW + dt.timedelta(seconds=30)
    again = client.post(
        "/webhooks/sendgrid/events", content=BATCH_BODY, headers=sendgrid_headers(key, BATCH_BODY, later)
    )
    assert again.status_code == 200
    assert again.json() == {"received": 11, "new": 0, "duplicate": 11, "unmatched": 0, "reconciled": 0, "suppressed": 0}
    after = snapshot(db)
    assert after["events"] == before["events"] and after["outbox"] == before["outbox"]
    assert ("c-1", "email") not in suppressions(db)


def test_sendgrid_event_moves_unknown_row_to_sent(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps([sg("delivered", "e3", 20)]).encode()
    response = client_for(db, settings(key)).post(
        "/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(key, body)
    )
    assert response.json()["reconciled"] == 1
    row = outbox_row(db, "e3")
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "sendgrid", "x-20")
    assert utc(row.sent_at) == NOW - dt.timedelta(seconds=60)


def test_unknown_row_with_an_earlier_event_is_reconciled(db: Engine) -> None:
    """An event that arrived while the row was still `sending` settles it once it is `unknown`."""
    with db.begin() as conn:
        conn.execute(
            insert(MessageEvent).values(
                event_key="sendgrid:early", outbox_id="e3", event_type="delivered", occurred_at=NOW, payload={}
            )
        )
        assert reconcile_unknown_from_events(conn, NOW) == 1
        assert reconcile_unknown_from_events(conn, NOW) == 0
    assert outbox_row(db, "e3").status == "sent"
    assert outbox_row(db, "s3").status == "unknown"


def _forged(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    return sendgrid_headers(ec.generate_private_key(ec.SECP256R1()), BATCH_BODY)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unsigned", 401),
        ("no timestamp", 401),
        ("no signature", 401),
        ("forged key", 403),
        ("tampered body", 403),
        ("stale", 403),
        ("from the future", 403),
        ("timestamp swapped", 403),
        ("garbage signature", 403),
    ],
)
def test_sendgrid_refused_requests_change_nothing(
    db: Engine, key: ec.EllipticCurvePrivateKey, case: str, status: int
) -> None:
    headers = sendgrid_headers(key, BATCH_BODY)
    body = BATCH_BODY
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "no timestamp":
        del headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    elif case == "no signature":
        del headers["X-Twilio-Email-Event-Webhook-Signature"]
    elif case == "forged key":
        headers = _forged(key)
    elif case == "tampered body":
        body = BATCH_BODY.replace(b'"delivered"', b'"unsubscribe"')
    elif case == "stale":
        headers = sendgrid_headers(key, BATCH_BODY, NOW - dt.timedelta(seconds=301))
    elif case == "from the future":
        headers = sendgrid_headers(key, BATCH_BODY, NOW + dt.timedelta(minutes=10))
    elif case == "timestamp swapped":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = str(int(NOW.timestamp()) - 5)
    elif case == "garbage signature":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64 at all!"
    before = snapshot(db)
    response = client_for(db, settings(key)).post("/webhooks/sendgrid/events", content=body, headers=headers)
    assert response.status_code == status
    assert snapshot(db) == before
    assert event_count(db) == 0


def test_sendgrid_without_a_configured_key_answers_503(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    response = client_for(db, settings(None)).post(
        "/webhooks/sendgrid/events", content=BATCH_BODY, headers=sendgrid_headers(key, BATCH_BODY)
    )
    assert response.status_code == 503
    assert event_count(db) == 0


def test_sendgrid_signed_body_that_is_not_an_array_is_a_400(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps({"event": "delivered"}).encode()
    response = client_for(db, settings(key)).post(
        "/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(key, body)
    )
    assert response.status_code == 400
    assert event_count(db) == 0


def test_oversized_body_is_refused_with_413(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key, max_body_bytes=1024))
    big = json.dumps([sg("delivered", "e1", n) for n in range(50)]).encode()
    assert len(big) > 1024
    response = client.post("/webhooks/sendgrid/events", content=big, headers=sendgrid_headers(key, big))
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield big[:1000]
        yield big[1000:]

    response = client.post("/webhooks/sendgrid/events", content=chunks(), headers=sendgrid_headers(key, big))
    assert response.status_code == 413
    assert event_count(db) == 0


# ---------------------------------------------------------------- Twilio status callbacks

STATUS_PATH = "/webhooks/twilio/status"


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": "+447911123456",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def test_twilio_status_callback_is_recorded_by_message_sid(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    response = twilio_post(client, STATUS_PATH, status_params(SID, "delivered"))
    assert response.status_code == 200, response.text
    assert response.json()["new"] == 1
    with db.connect() as conn:
        event = conn.execute(select(MessageEvent)).one()
    assert (event.event_key, event.outbox_id, event.event_type) == (f"twilio:{SID}:delivered", "s1", "delivered")
    assert "To" not in event.payload and "From" not in event.payload  # numbers are not copied into events
    assert outbox_row(db, "s1").status == "sent"
    again = twilio_post(client, STATUS_PATH, status_params(SID, "delivered"))
    assert again.json()["duplicate"] == 1 and event_count(db) == 1


def test_twilio_status_moves_unknown_row_to_sent_via_url_parameter(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    sid = "SM" + "c" * 32
    path = f"{STATUS_PATH}?winback_message_id=s3"
    response = twilio_post(client_for(db, settings(key)), path, status_params(sid, "sent"))
    assert response.status_code == 200, response.text
    assert response.json()["reconciled"] == 1
    row = outbox_row(db, "s3")
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "twilio", sid)


def test_twilio_21610_suppresses_sms(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    params = status_params(SID, "failed", ErrorCode="21610", ErrorMessage="Attempt to send to unsubscribed recipient")
    response = twilio_post(client_for(db, settings(key)), STATUS_PATH, params)
    assert response.status_code == 200
    assert suppressions(db) == {("c-11", "sms"): ("stop", "twilio status callback")}
    assert outbox_row(db, "s1").status == "sent"


def test_twilio_undelivered_without_21610_suppresses_nobody(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    params = status_params(SID, "undelivered", ErrorCode="30003")
    assert twilio_post(client_for(db, settings(key)), STATUS_PATH, params).status_code == 200
    assert suppressions(db) == {} and event_count(db) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [("unsigned", 401), ("wrong token", 403), ("host url", 403), ("tampered", 403), ("other query", 403)],
)
def test_twilio_status_refused_requests_change_nothing(
    db: Engine, key: ec.EllipticCurvePrivateKey, case: str, status: int
) -> None:
    client = client_for(db, settings(key))
    params = status_params(SID, "failed", ErrorCode="21610")
    before = snapshot(db)
    if case == "unsigned":
        response = client.post(STATUS_PATH, data=params)
    elif case == "wrong token":
        response = twilio_post(client, STATUS_PATH, params, token="not-the-token")
    elif case == "host url":  # signed for the URL the app sees behind the proxy, not the public one
        response = twilio_post(client, STATUS_PATH, params, signed_url="http://testserver" + STATUS_PATH)
    elif case == "tampered":
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + STATUS_PATH, params)
        response = client.post(
            STATUS_PATH, data={**params, "ErrorCode": "30003"}, headers={"X-Twilio-Signature": signature}
        )
    else:
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + STATUS_PATH, params)
        response = client.post(
            STATUS_PATH + "?winback_message_id=s3", data=params, headers={"X-Twilio-Signature": signature}
        )
    assert response.status_code == status
    assert snapshot(db) == before


def test_twilio_without_a_configured_token_answers_503(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key, twilio_auth_token=None))
    assert twilio_post(client, STATUS_PATH, status_params(SID, "delivered")).status_code == 503
    assert event_count(db) == 0


# ---------------------------------------------------------------- inbound SMS

INBOUND_PATH = "/webhooks/twilio/inbound"


def inbound(client: TestClient, number: str, body: str, sid: str) -> Any:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "SmsSid": sid,
        "From": number,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    return twilio_post(client, INBOUND_PATH, params)


@pytest.mark.parametrize(
    ("stop", "start"),
    list(zip(sorted(STOP_KEYWORDS), [*sorted(START_KEYWORDS)] * 3, strict=False)),
)
def test_every_opt_out_keyword_suppresses_and_start_restores(
    db: Engine, key: ec.EllipticCurvePrivateKey, stop: str, start: str
) -> None:
    client = client_for(db, settings(key))
    response = inbound(client, "+447911123456", f"  {stop.lower()}\n", "SM-stop")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "unsubscribed" in response.text and BRAND in response.text and "START" in response.text
    assert suppressions(db) == {("c-11", "sms"): ("stop", "sms reply")}
    response = inbound(client, "+447911123456", start.title(), "SM-start")
    assert response.status_code == 200 and "resubscribed" in response.text
    assert suppressions(db) == {}


def test_stop_matches_a_number_the_crm_holds_in_national_format(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    response = inbound(client_for(db, settings(key)), "+447911123457", "STOP", "SM-1")
    assert "unsubscribed" in response.text
    assert suppressions(db) == {("c-12", "sms"): ("stop", "sms reply")}


def test_stop_covers_every_customer_texted_at_the_number_start_only_the_latest(
    db: Engine, key: ec.EllipticCurvePrivateKey
) -> None:
    with db.begin() as conn:
        run_id = conn.execute(select(CampaignRun.id)).scalar_one()
        add_outbox(conn, run_id, "s9", "c-19", "sms", "+44 7911 123456", "sent", "twilio", "SM9", "en_GB", NOW)
    client = client_for(db, settings(key))
    inbound(client, "+447911123456", "STOP", "SM-a")
    assert set(suppressions(db)) == {("c-11", "sms"), ("c-19", "sms")}
    inbound(client, "+447911123456", "START", "SM-b")
    assert set(suppressions(db)) == {("c-11", "sms")}  # c-19 had the latest text to that number


def test_redelivered_stop_does_not_undo_a_later_start(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    inbound(client, "+447911123456", "STOP", "SM-1")
    inbound(client, "+447911123456", "START", "SM-2")
    again = inbound(client, "+447911123456", "STOP", "SM-1")
    assert again.status_code == 200
    assert suppressions(db) == {}


def test_help_replies_with_brand_and_how_to_opt_out(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    before = snapshot(db)
    for number in ("+447911123456", "+14155550123"):  # known or not: the same answer
        response = inbound(client_for(db, settings(key)), number, " Help ", "SM-h")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        assert "<Message>" in response.text and BRAND in response.text and "STOP" in response.text
    assert snapshot(db) == before


@pytest.mark.parametrize("body", ["STOP", "START", "hello, is this the shop?"])
def test_unknown_number_gets_empty_twiml_and_changes_nothing(
    db: Engine, key: ec.EllipticCurvePrivateKey, body: str
) -> None:
    before = snapshot(db)
    response = inbound(client_for(db, settings(key)), "+14155550123", body, "SM-u")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Message" not in response.text and "<Response" in response.text
    assert snapshot(db) == before


def test_other_replies_from_a_known_number_change_nothing(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    before = snapshot(db)
    response = inbound(client_for(db, settings(key)), "+447911123456", "please stop texting me", "SM-x")
    assert response.status_code == 200 and "<Message" not in response.text
    assert snapshot(db) == before


def test_forged_inbound_stop_changes_nothing(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    params = {"MessageSid": "SM-f", "From": "+447911123456", "Body": "STOP"}
    before = snapshot(db)
    forged = twilio_post(client, INBOUND_PATH, params, token="guessed")
    assert forged.status_code == 403
    assert client.post(INBOUND_PATH, data=params).status_code == 401
    assert snapshot(db) == before


# ---------------------------------------------------------------- one-click unsubscribe


def test_unsubscribe_get_and_head_change_nothing_post_suppresses(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    client = client_for(db, settings(key))
    path = f"/unsubscribe/{UnsubscribeLinks().token('c-1', 'email')}"
    before = snapshot(db)
    page = client.get(path)
    assert page.status_code == 200
    assert '<form method="post"' in page.text and BRAND in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert client.head(path).status_code == 200
    assert snapshot(db) == before
    done = client.post(
        path, content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert done.status_code == 200 and "no more" in done.text
    assert suppressions(db) == {("c-1", "email"): ("unsubscribe", "list-unsubscribe one-click")}
    assert client.post(path, data={"confirm": "yes"}).status_code == 200  # twice: still one suppression
    assert len(suppressions(db)) == 1


def test_unsubscribe_form_post_suppresses_sms(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    response = client_for(db, settings(key)).post(
        f"/unsubscribe/{UnsubscribeLinks().token('c-11', 'sms')}", data={"confirm": "yes"}
    )
    assert response.status_code == 200 and "text messages" in response.text
    assert suppressions(db) == {("c-11", "sms"): ("unsubscribe", "unsubscribe page")}


def test_unsubscribe_honours_the_configured_secret(
    db: Engine, key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from winback.settings import Settings

    token = UnsubscribeLinks().token("c-1", "email")  # made with the dev secret
    monkeypatch.setenv("WINBACK_UNSUBSCRIBE_SECRET", "production-secret")
    read_at_start = ServerSettings.from_settings(Settings())  # what `winback serve` reads when it starts
    assert read_at_start.unsubscribe.secret == "production-secret"
    client = client_for(db, settings(key, unsubscribe=read_at_start.unsubscribe))
    assert client.post(f"/unsubscribe/{token}").status_code == 400
    assert suppressions(db) == {}
    assert client.post(f"/unsubscribe/{read_at_start.unsubscribe.token('c-1', 'email')}").status_code == 200


@pytest.mark.parametrize("method", ["get", "head", "post"])
def test_bad_unsubscribe_token_is_a_400_and_changes_nothing(
    db: Engine, key: ec.EllipticCurvePrivateKey, method: str
) -> None:
    client = client_for(db, settings(key))
    good = UnsubscribeLinks().token("c-1", "email")
    payload, mac = good.split(".")
    other = UnsubscribeLinks().token("c-2", "email").split(".")[0]
    before = snapshot(db)
    for token in ("garbage", f"{other}.{mac}", f"{payload}.{mac[:-2]}AA", UnsubscribeLinks().token("c-1", "fax")):
        response = getattr(client, method)(f"/unsubscribe/{token}")
        assert response.status_code == 400
        if method != "head":
            assert response.headers["content-type"].startswith("text/plain")
    assert snapshot(db) == before


def test_suppress_helper_is_idempotent_with_the_server(db: Engine, key: ec.EllipticCurvePrivateKey) -> None:
    with db.begin() as conn:
        suppress(conn, "c-1", "email", "bounce", "sendgrid event webhook", NOW)
    response = client_for(db, settings(key)).post(f"/unsubscribe/{UnsubscribeLinks().token('c-1', 'email')}")
    assert response.status_code == 200
    assert suppressions(db) == {("c-1", "email"): ("bounce", "sendgrid event webhook")}


def test_an_event_for_a_row_waiting_to_retry_marks_it_sent_so_it_is_not_sent_twice(
    db: Engine, key: ec.EllipticCurvePrivateKey
) -> None:
    """The attempt timed out (the row went back to `queued`), yet SendGrid had the message."""
    from sqlalchemy import update

    with db.begin() as conn:
        run_id = conn.execute(select(CampaignRun.id)).scalar_one()
        add_outbox(conn, run_id, "r1", "c-31", "email", "r1@example.com", "queued", None, None, "en_GB", NOW)
        add_outbox(conn, run_id, "r2", "c-32", "email", "r2@example.com", "queued", None, None, "en_GB", NOW)
        conn.execute(update(OutboxMessage).where(OutboxMessage.id == "r2").values(attempts=0))
    body = json.dumps([sg("processed", "r1", 40), sg("processed", "r2", 41)]).encode()
    response = client_for(db, settings(key)).post(
        "/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(key, body)
    )
    assert response.json()["reconciled"] == 1
    assert outbox_row(db, "r1").status == "sent"  # its attempt reached SendGrid: never sent again
    assert outbox_row(db, "r2").status == "queued"  # never attempted: an event cannot be about it


def test_stop_finds_numbers_stored_with_trailing_space_or_a_lower_case_locale(
    db: Engine, key: ec.EllipticCurvePrivateKey
) -> None:
    with db.begin() as conn:
        run_id = conn.execute(select(CampaignRun.id)).scalar_one()
        add_outbox(conn, run_id, "t1", "c-41", "sms", "07911 123488 ", "sent", "twilio", "SM41", "en_GB", NOW)
        add_outbox(conn, run_id, "t2", "c-42", "sms", "07911 123499", "sent", "twilio", "SM42", "en_gb", NOW)
    client = client_for(db, settings(key))
    assert "unsubscribed" in inbound(client, "+447911123488", "STOP", "SM-t1").text
    assert "unsubscribed" in inbound(client, "+447911123499", "STOP", "SM-t2").text
    assert {("c-41", "sms"), ("c-42", "sms")} <= set(suppressions(db))


def test_an_email_opt_out_or_bounce_covers_every_customer_at_that_address(
    db: Engine, key: ec.EllipticCurvePrivateKey
) -> None:
    with db.begin() as conn:
        run_id = conn.execute(select(CampaignRun.id)).scalar_one()
        for oid, cid, to in (("a1", "c-51", "jane@example.com"), ("a2", "c-52", " Jane@Example.com "),
                             ("a3", "c-53", "other@example.com"), ("b1", "c-61", "bo@example.com"),
                             ("b2", "c-62", "BO@example.com")):  # fmt: skip
            add_outbox(conn, run_id, oid, cid, "email", to, "sent", "sendgrid", f"x-{oid}", "en_GB", NOW)
    client = client_for(db, settings(key))
    client.post(f"/unsubscribe/{UnsubscribeLinks().token('c-51', 'email')}", data={"confirm": "yes"})
    body = json.dumps([sg("bounce", "b1", 70, type="bounce")]).encode()
    client.post("/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(key, body))
    held = suppressions(db)
    assert {("c-51", "email"), ("c-52", "email"), ("c-61", "email"), ("c-62", "email")} <= set(held)
    assert ("c-53", "email") not in held  # another address: untouched
