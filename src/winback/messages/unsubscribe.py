"""Signed unsubscribe links: the link itself proves which customer and channel, so no login is needed.

`UnsubscribeLinks` holds the signing secret and the public base URL (WINBACK_UNSUBSCRIBE_SECRET and
WINBACK_PUBLIC_URL, read by the edge's `Settings` and handed down: `UnsubscribeLinks.from_settings`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from winback.settings import DEFAULT_PUBLIC_URL, DEV_UNSUBSCRIBE_SECRET, Settings

DEV_SECRET = DEV_UNSUBSCRIBE_SECRET


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Makes and reads the signed tokens of unsubscribe links, and the links themselves."""

    secret: str = field(default=DEV_SECRET, repr=False)
    base_url: str = DEFAULT_PUBLIC_URL

    @classmethod
    def from_settings(cls, settings: Settings) -> UnsubscribeLinks:
        """The links the settings configure (WINBACK_UNSUBSCRIBE_SECRET, WINBACK_PUBLIC_URL)."""
        return cls(settings.unsubscribe_secret.get_secret_value(), settings.public_url)

    def token(self, customer_id: str, channel: str) -> str:
        """`<payload>.<mac>`, each base64url (which never contains '.'), so the split is unambiguous."""
        payload = f"{customer_id}:{channel}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, token: str) -> tuple[str, str]:
        """(customer_id, channel) from a token; ValueError when it was not signed with this secret."""
        try:
            payload_part, mac_part = token.split(".")
            payload, mac = _unb64(payload_part), _unb64(mac_part)
            customer_id, channel = payload.decode().rsplit(":", 1)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError("unsubscribe token is malformed") from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise ValueError("unsubscribe token signature does not match")
        return customer_id, channel

    def url(self, customer_id: str, channel: str) -> str:
        """The public unsubscribe link for this customer and channel, signed so it needs no login."""
        return f"{self.base_url.rstrip('/')}/unsubscribe/{self.token(customer_id, channel)}"

    def _mac(self, payload: bytes) -> bytes:
        # hmac.digest: one C call, no HMAC object made per message
        return hmac.digest(self.secret.encode(), payload, hashlib.sha256)[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# the links a template check renders with; a real message gets the configured ones (delivery.prepare)
CHECK_LINKS = UnsubscribeLinks()
