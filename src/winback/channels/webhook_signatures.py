"""Check that a webhook really comes from the provider before acting on it (pure functions, no web framework).

A forged "unsubscribe" or "delivered" event would corrupt consent and outcome data, so every webhook endpoint
verifies first:

- SendGrid Event Webhook: ECDSA P-256 / SHA-256 over `timestamp + raw body`, headers
  `X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`. The SDK checks the signature but not the
  timestamp's age, so a captured request could be replayed forever; we add a replay window.
- Twilio status callbacks: `X-Twilio-Signature`, HMAC-SHA1 of the full URL plus sorted params, keyed by the
  auth token (checked by the SDK's RequestValidator).
- Generic `sha256=<hex>` HMAC headers (our own or third-party senders).

All return False for anything missing, malformed or forged; only a malformed *public key* (our own
configuration) raises, so a misconfiguration is loud instead of silently rejecting every event.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


def verify_sendgrid_event_signature(
    public_key_b64: str,
    payload_bytes: bytes,
    signature_b64: str | None,
    timestamp: str | None,
    *,
    now: float | datetime,
    max_age_seconds: float = 300,
) -> bool:
    """True if SendGrid signed `timestamp + payload` and the timestamp is within `max_age_seconds` of `now`.

    `public_key_b64` is the verification key from SendGrid's Mail Settings (base64 DER, no PEM armour);
    `now` is a Unix time or an aware datetime, passed in so the check is deterministic. Timestamps too far in
    the future are rejected as well: they would extend the replay window.
    """
    if not public_key_b64:
        raise ValueError("no SendGrid event webhook public key configured")
    webhook = EventWebhook(public_key_b64)  # parse first: a bad key must fail loudly, whatever the request
    if not signature_b64 or not timestamp:
        return False
    try:
        sent_at = int(timestamp)
        text = payload_bytes.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    current = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(current - sent_at) > max_age_seconds:
        return False
    try:
        return bool(webhook.verify_signature(text, signature_b64, timestamp))
    except (InvalidSignature, binascii.Error, ValueError):
        return False


def verify_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, str] | str,
    signature: str | None,
) -> bool:
    """True if `signature` (the X-Twilio-Signature header) matches the full `url` and the POSTed `params`.

    `url` must be exactly what Twilio requested, query string included (mind proxies rewriting scheme or
    host). For JSON bodies pass the raw body as `params`, as the SDK expects.
    """
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def verify_hmac_sha256(secret: bytes | str, body: bytes, header_value: str | None) -> bool:
    """True if `header_value` is `sha256=<hex HMAC-SHA256 of body keyed by secret>` (constant time)."""
    if not header_value or not secret:
        return False
    scheme, sep, received = header_value.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), received.strip().lower().encode("utf-8"))
