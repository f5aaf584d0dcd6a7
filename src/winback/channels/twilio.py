"""SMS through Twilio's Messages API (2010-04-01), via the official SDK's `twilio.rest.Client`.

Two things the SDK does not do for us, both in `RedirectingTwilioHttpClient`:
- point the SDK at another base URL (a local stand-in, a recording proxy). `client.api.base_url` only
  redirects api.twilio.com; rewriting in the HTTP client covers every `*.twilio.com` domain.
- keep each thread's last response headers, because `TwilioRestException` drops them and a 429/503's
  Retry-After is the only hint of when to try again.

The body is sent as rendered, less control characters (`messages.safe_text.sms_body`): segment budgeting,
the length within Twilio's 1600 characters and the opt-out wording belong to the renderer
(`messages.sms_segments.fit_sms`). Error 21610 (the recipient replied STOP) comes back as
`Failed(reason="recipient opted out")` so the caller can suppress the number.

Each message's StatusCallback is the configured URL plus `?winback_message_id=<outbox id>`: a send whose
response was lost leaves its outbox row `unknown` with no MessageSid, and only that id lets the callback
settle it (see `messages.webhooks.parse_twilio_status`).

`find_sent` answers the other way round, for an `unknown` row no callback settled: the Messages list
filtered by recipient, sender and send date, matched on the body (the Message resource does not echo the
StatusCallback URL, so our id cannot be matched there). See `delivery.settle` for what is done with it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from winback.channels.errors import WinbackProviderError, map_provider_errors
from winback.channels.outcomes import OutgoingMessage, SendOutcome, Sent
from winback.channels.webhooks import CALLBACK_ID_PARAM
from winback.errors import ConfigError
from winback.messages.redact import mask_phone
from winback.messages.safe_text import one_line, sms_body
from winback.settings import TWILIO_API_BASE_URL, Settings

log = logging.getLogger(__name__)

PROVIDER = "twilio"
DEFAULT_API_BASE_URL = TWILIO_API_BASE_URL
LOOKUP_SKEW = dt.timedelta(minutes=10)  # our clock against Twilio's, when filtering by send date
LOOKUP_LIMIT = 200  # messages to one number since the start: more than any campaign sends one person


@dataclass(frozen=True)
class SentLookup:
    """What the Messages list says of one message, to settle whether it left.

    Its SID when found; else how many other messages this sender sent the number since (any: absence
    cannot be told from a body Twilio rewrote, so do not resend).
    """

    sid: str | None
    others: int = 0


@dataclass(frozen=True)
class TwilioSettings:
    """Explicit settings; one sender: a Messaging Service (preferred when both are set) or a number."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    status_callback_url: str | None = None
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.account_sid or not self.auth_token:
            raise ConfigError("Twilio account_sid and auth_token are both required")
        if not (self.from_number or self.messaging_service_sid):
            raise ConfigError("Twilio needs a from_number or a messaging_service_sid")

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSettings | None:
        """The adapter's settings; None when neither account sid nor token is set (local sink).

        Half a configuration (sid without token, no sender) raises instead of silently not sending.
        """
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        if not sid and not token:
            return None
        if not (sid and token):
            raise ConfigError("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither")
        return cls(
            account_sid=sid,
            auth_token=token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=settings.twilio_api_base_url,
            status_callback_url=settings.twilio_status_callback_url,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwilioSettings | None:
        """`from_settings` for these variables only (not the process environment)."""
        return cls.from_settings(Settings.from_mapping(env))


class RedirectingTwilioHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sending every `*.twilio.com` request to `base_url` when one is given."""

    def __init__(self, base_url: str | None = None, *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        target = urlsplit(base_url.rstrip("/")) if base_url else None
        self._target = None if target is None or _is_twilio_host(target.hostname) else target
        self._local = threading.local()

    def rewrite(self, url: str) -> str:
        """`url` pointed at `base_url` when it is a Twilio host and a redirect is configured; else unchanged."""
        parts = urlsplit(url)
        if self._target is None or not _is_twilio_host(parts.hostname):
            return url
        path = self._target.path + parts.path
        return urlunsplit((self._target.scheme, self._target.netloc, path, parts.query, parts.fragment))

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """The SDK's request, redirected, keeping this thread's response headers for Retry-After."""
        self._local.headers = None
        response = super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.headers = response.headers
        return response

    def last_response_headers(self) -> Mapping[str, str] | None:
        """Headers of this thread's last response (thread-safe, unlike the SDK's last_response)."""
        return getattr(self._local, "headers", None)


class TwilioChannel:
    """`send(message)` -> Sent / Failed; never raises for provider refusals or outages."""

    provider = PROVIDER

    def __init__(self, settings: TwilioSettings, *, http_client: RedirectingTwilioHttpClient | None = None) -> None:
        self._settings = settings
        self._http = http_client or RedirectingTwilioHttpClient(settings.api_base_url, timeout=settings.timeout_seconds)
        self._client = Client(settings.account_sid, settings.auth_token, http_client=self._http)

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Send one SMS; a refusal or outage comes back as `Failed`, never as an exception."""
        if message.channel != "sms":
            raise ValueError(f"TwilioChannel cannot send a {message.channel!r} message")
        params: dict[str, str] = {"to": one_line(message.to), "body": sms_body(message.text)}
        if self._settings.messaging_service_sid:
            params["messaging_service_sid"] = self._settings.messaging_service_sid
        elif self._settings.from_number:
            params["from_"] = self._settings.from_number
        if self._settings.status_callback_url:
            params["status_callback"] = status_callback_url(self._settings.status_callback_url, message.message_id)
        try:
            with map_provider_errors(PROVIDER, response_headers=self._http.last_response_headers):
                created = self._client.messages.create(**params)
        except WinbackProviderError as exc:
            log.warning(
                "twilio refused message_id=%s to=%s code=%s retryable=%s reason=%s",
                message.message_id,
                mask_phone(message.to),
                exc.provider_code,
                exc.retryable,
                exc.reason,
            )
            return exc.to_failed()
        log.info(
            "twilio accepted message_id=%s to=%s sid=%s",
            message.message_id,
            mask_phone(message.to),
            created.sid,
        )
        return Sent(PROVIDER, created.sid)

    def find_sent(self, to: str, body: str, since: dt.datetime) -> SentLookup:
        """The message this sender sent `to` with exactly `body`, on or after `since` (less `LOOKUP_SKEW`).

        One Messages list through the SDK, filtered by To, From (unless a Messaging Service sends, whose
        numbers vary) and DateSent>; outbound messages only, of our Messaging Service when one is set.
        Raises `WinbackProviderError` when Twilio cannot be asked. A message still in Twilio's queue has no
        send date yet and is not listed: absence means something only after the validity period.
        """
        service = self._settings.messaging_service_sid
        filters: dict[str, object] = {"to": to, "date_sent_after": since - LOOKUP_SKEW}
        if not service and self._settings.from_number:
            filters["from_"] = self._settings.from_number
        with map_provider_errors(PROVIDER, response_headers=self._http.last_response_headers):
            listed = self._client.messages.list(**filters, limit=LOOKUP_LIMIT, page_size=50)
        others = 0
        for message in listed:
            if not str(message.direction or "").startswith("outbound"):
                continue
            if service and message.messaging_service_sid != service:
                continue
            if message.body == body:
                log.info("twilio lookup found to=%s sid=%s", mask_phone(to), message.sid)
                return SentLookup(message.sid)
            others += 1
        return SentLookup(None, others)


def status_callback_url(base_url: str, message_id: str) -> str:
    """`base_url` with `winback_message_id=<message_id>` added to its query (replacing one already there).

    The rest of the URL is kept byte for byte: Twilio signs the callback over the URL exactly as given here,
    and the server checks that signature over the URL it was called on, query string included.
    """
    parts = urlsplit(base_url)
    kept = [pair for pair in parts.query.split("&") if pair and pair.split("=", 1)[0] != CALLBACK_ID_PARAM]
    query = "&".join([*kept, urlencode({CALLBACK_ID_PARAM: message_id})])
    return urlunsplit(parts._replace(query=query))


def _is_twilio_host(host: str | None) -> bool:
    return host is not None and (host == "twilio.com" or host.endswith(".twilio.com"))
