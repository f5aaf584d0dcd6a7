"""Signed unsubscribe links: the link itself proves which customer and channel, so no login is needed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEV_SECRET = "winback-dev-unsubscribe-secret"


def _secret() -> bytes:
    return os.environ.get("WINBACK_UNSUBSCRIBE_SECRET", DEV_SECRET).encode()


def make_token(customer_id: str, channel: str) -> str:
    payload = f"{customer_id}:{channel}".encode()
    mac = hmac.new(_secret(), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + b"." + mac).decode().rstrip("=")


def read_token(token: str) -> tuple[str, str]:
    """(customer_id, channel) from a token; ValueError when it was not signed by us."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload, mac = raw.rsplit(b".", 1)
    except (ValueError, TypeError) as exc:
        raise ValueError("unsubscribe token is malformed") from exc
    expected = hmac.new(_secret(), payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise ValueError("unsubscribe token signature does not match")
    customer_id, channel = payload.decode().rsplit(":", 1)
    return customer_id, channel


def unsubscribe_url(customer_id: str, channel: str) -> str:
    base = os.environ.get("WINBACK_PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/")
    return f"{base}/unsubscribe/{make_token(customer_id, channel)}"
