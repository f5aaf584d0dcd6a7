"""Email through SendGrid's v3 Mail Send API, via the official SDK.

One request per message, one personalization. What we add on top of the rendered message, and why:
- `custom_args` inside the personalization, string values only (winback_message_id, campaign_id,
  customer_id): SendGrid echoes them in every Event Webhook event, which is how events are matched to outbox
  rows (the 202's X-Message-Id is only a prefix of the events' sg_message_id). Top-level custom_args would be
  typed as a string by the published description, so we never use them.
- RFC 8058 one-click unsubscribe headers when the message has an unsubscribe URL (Gmail and Yahoo require
  them for bulk senders), with an optional mailto: alternative.
- The sender's postal address in both parts unless the template already shows it (CAN-SPAM).
- At most 10 distinct categories (the API's limit).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from sendgrid import SendGridAPIClient

from winback.channels.errors import WinbackProviderError, map_provider_errors
from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent
from winback.errors import ConfigError
from winback.messages.redact import mask_email
from winback.messages.safe_text import (
    CUSTOM_ARG_MAX_CHARS,
    SENDER_NAME_MAX_CHARS,
    header_value,
    one_line,
    subject_line,
)
from winback.settings import SENDGRID_API_HOST, Settings

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
DEFAULT_API_HOST = SENDGRID_API_HOST
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255  # the API's limit for one category


@dataclass(frozen=True)
class SendGridSettings:
    """Everything the adapter needs, explicit so tests and stand-ins can build it without the environment."""

    api_key: str = field(repr=False)
    from_email: str
    postal_address: str
    from_name: str | None = None
    api_host: str = DEFAULT_API_HOST
    unsubscribe_mailto: str | None = None
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError("SendGrid api_key is empty")
        if "@" not in self.from_email:
            raise ConfigError("SendGrid from_email is not an email address")
        if not self.postal_address.strip():
            raise ConfigError("a postal address is required in every marketing email (CAN-SPAM)")

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridSettings | None:
        """The adapter's settings; None without SENDGRID_API_KEY (use the local sink).

        With a key but no WINBACK_EMAIL_FROM or WINBACK_POSTAL_ADDRESS this raises: sending without them
        would be a misconfiguration, not a choice. WINBACK_EMAIL_FROM may be `Name <address>`.
        """
        if settings.sendgrid_api_key is None:
            return None
        if settings.email_from is None or settings.postal_address is None:
            required = {"WINBACK_EMAIL_FROM": settings.email_from, "WINBACK_POSTAL_ADDRESS": settings.postal_address}
            missing = ", ".join(name for name, value in required.items() if value is None)
            raise ConfigError(f"SENDGRID_API_KEY is set but {missing} is not")
        name, address = parseaddr(settings.email_from)
        return cls(
            api_key=settings.sendgrid_api_key.get_secret_value(),
            from_email=address,
            from_name=name or None,
            postal_address=settings.postal_address,
            api_host=settings.sendgrid_api_host,
            unsubscribe_mailto=settings.unsubscribe_mailto,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SendGridSettings | None:
        """`from_settings` for these variables only (not the process environment)."""
        return cls.from_settings(Settings.from_mapping(env))


class SendGridChannel:
    """`send(message)` -> Sent / Failed; never raises for provider refusals or outages."""

    provider = PROVIDER

    def __init__(self, settings: SendGridSettings, *, client: SendGridAPIClient | None = None) -> None:
        self._settings = settings
        self._client = client or SendGridAPIClient(settings.api_key, host=settings.api_host.rstrip("/"))
        self._client.client.timeout = settings.timeout_seconds

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Post one email; a refusal or outage comes back as `Failed`, never as an exception."""
        if message.channel != "email":
            raise ValueError(f"SendGridChannel cannot send a {message.channel!r} message")
        body = build_mail_body(message, self._settings)
        try:
            with map_provider_errors(PROVIDER):
                response = self._client.send(body)
        except WinbackProviderError as exc:
            log.warning(
                "sendgrid refused message_id=%s to=%s status=%s retryable=%s reason=%s",
                message.message_id,
                mask_email(message.to),
                exc.http_status,
                exc.retryable,
                exc.reason,
            )
            return exc.to_failed()
        provider_id = response.headers.get("X-Message-Id") if response.headers else None
        log.info(
            "sendgrid accepted message_id=%s to=%s x_message_id=%s",
            message.message_id,
            mask_email(message.to),
            provider_id,
        )
        return Sent(PROVIDER, provider_id)


def build_mail_body(message: OutgoingMessage, settings: SendGridSettings) -> dict[str, Any]:
    """The Mail Send request body for one message (pure; what `send` posts).

    Built as a plain dict rather than with `sendgrid.helpers.mail.Mail`: the helper reverses the order of
    categories and headers and raises KeyError on an address it cannot parse, while a bad address should
    come back from the API as a refusal (Failed), not crash the send loop.

    Every value SendGrid turns into a header (subject, sender name, custom args, categories, the
    List-Unsubscribe targets) is one line without control characters (`messages.safe_text`), whoever built
    the message: a CR-LF in a customer's name must not become a "Bcc:" header.
    """
    sender: dict[str, str] = {"email": one_line(settings.from_email)}
    from_name = header_value(settings.from_name, SENDER_NAME_MAX_CHARS)
    if from_name:
        sender["name"] = from_name
    personalization: dict[str, Any] = {"to": [{"email": message.to}]}
    custom_args = tracking_args(message)
    if custom_args:
        personalization["custom_args"] = custom_args
    content = [{"type": "text/plain", "value": _with_postal_address_text(message.text, settings.postal_address)}]
    if message.html:
        content.append({"type": "text/html", "value": _with_postal_address_html(message.html, settings.postal_address)})
    body: dict[str, Any] = {"personalizations": [personalization], "from": sender}
    subject = subject_line(message.subject)
    if subject:
        body["subject"] = subject
    body["content"] = content
    categories = limited_categories(message.categories)
    if categories:
        body["categories"] = categories
    if message.unsubscribe_url:
        body["headers"] = list_unsubscribe_headers(message.unsubscribe_url, settings.unsubscribe_mailto)
    return body


def tracking_args(message: OutgoingMessage) -> dict[str, str]:
    """Custom args SendGrid echoes in webhook events; strings only, one line, empty ids left out."""
    args = {
        "winback_message_id": message.message_id,
        "campaign_id": message.campaign_id,
        "customer_id": message.customer_id,
    }
    safe = {k: header_value(v, CUSTOM_ARG_MAX_CHARS) for k, v in args.items() if v}
    return {k: v for k, v in safe.items() if v}


def list_unsubscribe_headers(unsubscribe_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe, plus RFC 8058 one-click (which requires an https URL)."""
    unsubscribe_url, mailto = one_line(unsubscribe_url), one_line(mailto) or None
    targets = [f"<{unsubscribe_url}>"]
    if mailto:
        targets.append(f"<{mailto if mailto.startswith('mailto:') else 'mailto:' + mailto}>")
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if unsubscribe_url.lower().startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def limited_categories(categories: tuple[str, ...]) -> list[str]:
    """Distinct, non-empty, first 10: the API rejects the whole send beyond that."""
    distinct = list(dict.fromkeys(c for c in (header_value(c, MAX_CATEGORY_CHARS) for c in categories) if c))
    if len(distinct) > MAX_CATEGORIES:
        log.warning("dropping %d categories beyond SendGrid's limit of 10", len(distinct) - MAX_CATEGORIES)
    return distinct[:MAX_CATEGORIES]


def _with_postal_address_text(text: str, postal_address: str) -> str:
    """The text with the sender's postal address as a footer, unless it already shows it (anti-spam law)."""
    if _normalised(postal_address) in _normalised(text):
        return text
    return f"{text.rstrip()}\n\n--\n{postal_address.strip()}\n"


def _with_postal_address_html(body: str, postal_address: str) -> str:
    """The HTML with the postal address as a footer before `</body>`, unless its visible text shows it."""
    visible_text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    if _normalised(postal_address) in _normalised(visible_text):
        return body
    lines = [html.escape(line.strip()) for line in postal_address.strip().splitlines() if line.strip()]
    footer = f'<p class="postal-address">{"<br>".join(lines)}</p>'
    closing = re.search(r"</body\s*>", body, flags=re.IGNORECASE)
    if closing:
        return f"{body[: closing.start()]}{footer}{body[closing.start() :]}"
    return f"{body}{footer}"


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()
