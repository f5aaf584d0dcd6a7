"""Webhook signature checks, signed with real keys the way the providers sign."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from conftest import public_b64, sendgrid_signature
from cryptography.hazmat.primitives.asymmetric import ec

from winback.channels.webhook_signatures import (
    verify_hmac_sha256,
    verify_sendgrid_event_signature,
    verify_twilio_signature,
)

NOW = 1_764_072_000  # a fixed "now" keeps the replay-window tests deterministic
EVENTS = json.dumps(
    [{"email": "jane@example.com", "event": "delivered", "winback_message_id": "msg-1", "timestamp": NOW}]
).encode()


def test_sendgrid_genuine_event_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    ts = str(NOW - 10)
    assert verify_sendgrid_event_signature(public_b64(key), EVENTS, sendgrid_signature(key, ts, EVENTS), ts, now=NOW)
    assert verify_sendgrid_event_signature(
        public_b64(key), EVENTS, sendgrid_signature(key, ts, EVENTS), ts, now=datetime.fromtimestamp(NOW, UTC)
    )


def test_sendgrid_tampered_body_is_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    ts = str(NOW)
    signature = sendgrid_signature(key, ts, EVENTS)
    assert not verify_sendgrid_event_signature(
        public_b64(key), EVENTS.replace(b"delivered", b"unsubscribe"), signature, ts, now=NOW
    )


def test_sendgrid_signature_is_bound_to_its_timestamp(key: ec.EllipticCurvePrivateKey) -> None:
    signature = sendgrid_signature(key, str(NOW), EVENTS)
    assert not verify_sendgrid_event_signature(public_b64(key), EVENTS, signature, str(NOW - 1), now=NOW)


def test_sendgrid_signature_from_another_key_is_rejected(key: ec.EllipticCurvePrivateKey) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    ts = str(NOW)
    assert not verify_sendgrid_event_signature(
        public_b64(key), EVENTS, sendgrid_signature(forger, ts, EVENTS), ts, now=NOW
    )


@pytest.mark.parametrize(("age", "ok"), [(0, True), (300, True), (301, False), (86_400, False), (-301, False)])
def test_sendgrid_replay_window(key: ec.EllipticCurvePrivateKey, age: int, ok: bool) -> None:
    ts = str(NOW - age)
    result = verify_sendgrid_event_signature(public_b64(key), EVENTS, sendgrid_signature(key, ts, EVENTS), ts, now=NOW)
    assert result is ok


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [(None, str(NOW)), ("", str(NOW)), ("sig", None), ("not base64!!", str(NOW)), ("c2ln", "yesterday")],
)
def test_sendgrid_missing_or_malformed_headers_are_rejected(
    key: ec.EllipticCurvePrivateKey, signature: str | None, timestamp: str | None
) -> None:
    assert not verify_sendgrid_event_signature(public_b64(key), EVENTS, signature, timestamp, now=NOW)


def test_sendgrid_bad_public_key_is_a_loud_configuration_error() -> None:
    with pytest.raises(ValueError):
        verify_sendgrid_event_signature("bm90IGEga2V5", EVENTS, None, None, now=NOW)
    with pytest.raises(ValueError):
        verify_sendgrid_event_signature("", EVENTS, "x", str(NOW), now=NOW)


TOKEN = "fedcba9876543210" * 2
CALLBACK_URL = "https://winback.example/webhooks/twilio/status?tenant=acme"
PARAMS = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": "+447700900123", "ErrorCode": ""}


def twilio_sign(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's scheme, written out independently: HMAC-SHA1 over the URL plus sorted key+value pairs."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_twilio_genuine_callback_is_accepted() -> None:
    assert verify_twilio_signature(TOKEN, CALLBACK_URL, PARAMS, twilio_sign(TOKEN, CALLBACK_URL, PARAMS))


def test_twilio_forged_callbacks_are_rejected() -> None:
    signature = twilio_sign(TOKEN, CALLBACK_URL, PARAMS)
    assert not verify_twilio_signature(TOKEN, CALLBACK_URL, {**PARAMS, "MessageStatus": "failed"}, signature)
    assert not verify_twilio_signature(TOKEN, CALLBACK_URL.replace("acme", "evil"), PARAMS, signature)
    assert not verify_twilio_signature("0" * 32, CALLBACK_URL, PARAMS, signature)
    assert not verify_twilio_signature(TOKEN, CALLBACK_URL, PARAMS, twilio_sign("0" * 32, CALLBACK_URL, PARAMS))
    assert not verify_twilio_signature(TOKEN, CALLBACK_URL, PARAMS, None)
    assert not verify_twilio_signature(TOKEN, CALLBACK_URL, PARAMS, "")


SECRET = b"whsec_0123456789"
BODY = b'{"event":"redeemed","code":"WB-20"}'


def hmac_header(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_hmac_genuine_body_is_accepted() -> None:
    assert verify_hmac_sha256(SECRET, BODY, hmac_header(SECRET, BODY))
    assert verify_hmac_sha256(SECRET.decode(), BODY, hmac_header(SECRET, BODY).upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    "header",
    [
        hmac_header(b"other-secret", BODY),
        hmac_header(SECRET, BODY + b" "),
        hmac_header(SECRET, BODY).removeprefix("sha256="),  # no scheme
        "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(),
        "sha256=",
        "sha256=zz",
        "sha256=é" * 3,
        "",
        None,
    ],
)
def test_hmac_forged_or_malformed_headers_are_rejected(header: str | None) -> None:
    assert not verify_hmac_sha256(SECRET, BODY, header)


def test_hmac_without_a_secret_never_verifies() -> None:
    assert not verify_hmac_sha256(b"", BODY, hmac_header(b"", BODY))
