"""Signed unsubscribe links: the link itself proves which customer and channel, so no login is needed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEV_SECRET = "winback-dev-unsubscribe-secret"


def _secret() -> bytes:
    return os.environ.get("WINBACK_UNSUBSCRIBE_SECRET", DEV_SECRET).encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(customer_id: str, channel: str) -> str:
    """`<payload>.<mac>`, each base64url (which never contains '.'), so the split is unambiguous."""
    payload = f"{customer_id}:{channel}".encode()
    mac = hmac.new(_secret(), payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(token: str) -> tuple[str, str]:
    """(customer_id, channel) from a token; ValueError when it was not signed by us."""
    try:
        payload_part, mac_part = token.split(".")
        payload, mac = _unb64(payload_part), _unb64(mac_part)
        customer_id, channel = payload.decode().rsplit(":", 1)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("unsubscribe token is malformed") from exc
    expected = hmac.new(_secret(), payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise ValueError("unsubscribe token signature does not match")
    return customer_id, channel


def unsubscribe_url(customer_id: str, channel: str) -> str:
    base = os.environ.get("WINBACK_PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/")
    return f"{base}/unsubscribe/{make_token(customer_id, channel)}"
