"""What a send attempt came to, as values: the outbox turns each into a status.

Sent        the provider accepted the message (provider_message_id when it gave one)
Skipped     deliberately not sent: consent, suppression, bad contact data (reason names which)
Failed      the provider refused or could not be reached; `retryable` says whether trying again may help,
            `retry_after` (seconds) is the provider's own hint when it gave one
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Channel = Literal["email", "sms"]


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message, ready for a channel adapter; `message_id` is the outbox row's deterministic id."""

    message_id: str
    channel: Channel
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    campaign_id: str = ""
    customer_id: str = ""
    unsubscribe_url: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Sent:
    """The provider accepted the message; its id (when it gave one) matches later webhook events."""

    provider: str
    provider_message_id: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Deliberately not sent (consent, suppression, bad contact data); `reason` says which."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The provider refused or could not be reached; `retryable` says whether another try may help."""

    reason: str
    retryable: bool
    retry_after: float | None = None
    provider_code: str | None = None


SendOutcome = Sent | Skipped | Failed
