"""One vocabulary for what went wrong at a provider, whichever SDK raised it.

The SendGrid SDK raises `python_http_client` HTTP errors and bare `urllib` errors, the Twilio SDK raises
`TwilioRestException` / `TwilioServiceException` and `requests` errors. Channel adapters wrap each SDK call in
`map_provider_errors()`, which re-raises them (httpx style, `raise ... from exc`) as:

    WinbackProviderError            anything that stopped a provider call
    ├── ProviderUnavailable         no usable answer: refused/reset connection, DNS, timeout (retryable)
    ├── ProviderRateLimited         HTTP 429 (retryable; `retry_after` from Retry-After or X-RateLimit-Reset)
    ├── ProviderServerError         HTTP 5xx (retryable)
    └── ProviderRejected            any other 4xx: the request itself is wrong, retrying cannot help
        ├── ProviderAuthError       401/403: credentials or permissions, an operator must act
        └── RecipientOptedOut       Twilio 21610: the recipient replied STOP; suppress, never retry

Adapters convert the exception to a `Failed` outcome at their edge (`exc.to_failed()`), so callers get values,
never exceptions, for provider refusals. Reasons are passed through `redact_text` because providers echo the
recipient's address or number in their messages.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import python_http_client.exceptions as sendgrid_errors
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from winback.channels.outcomes import Failed
from winback.errors import DeliveryError
from winback.messages.redact import mask_email, mask_phone, redact_text

__all__ = [
    "OPTED_OUT_REASON",
    "ProviderAuthError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderServerError",
    "ProviderUnavailable",
    "RecipientOptedOut",
    "WinbackProviderError",
    "map_provider_errors",
    "mask_email",
    "mask_phone",
    "parse_retry_after",
]

OPTED_OUT_REASON = "recipient opted out"
TWILIO_OPTED_OUT_CODE = 21610

HeadersSource = Callable[[], Mapping[str, str] | None]


class WinbackProviderError(DeliveryError):
    """A provider call that did not succeed; carries everything the outbox needs to decide what next."""

    retryable: bool = False

    def __init__(
        self,
        provider: str,
        reason: str,
        *,
        http_status: int | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.http_status = http_status
        self.provider_code = provider_code
        self.retry_after = retry_after

    def to_failed(self) -> Failed:
        """The refusal as a `Failed` outcome, so adapters return values rather than raise."""
        return Failed(
            reason=self.reason,
            retryable=self.retryable,
            retry_after=self.retry_after,
            provider_code=self.provider_code,
        )


class ProviderUnavailable(WinbackProviderError):
    """No usable answer (refused or reset connection, DNS, timeout): the call may work later."""

    retryable = True


class ProviderRateLimited(WinbackProviderError):
    """HTTP 429: retry after `retry_after` seconds when the provider said how long."""

    retryable = True


class ProviderServerError(WinbackProviderError):
    """HTTP 5xx: the provider's own failure, worth another try."""

    retryable = True


class ProviderRejected(WinbackProviderError):
    """Any other 4xx: the request itself is wrong, so retrying cannot help."""

    retryable = False


class ProviderAuthError(ProviderRejected):
    """HTTP 401/403: credentials or permissions; an operator must act before anything can be sent."""


class RecipientOptedOut(ProviderRejected):
    """Twilio 21610: the recipient replied STOP; suppress the number, never retry."""


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or HTTP-date) or SendGrid's `X-RateLimit-Reset` (epoch).

    SendGrid's 429 carries no Retry-After, only the epoch second its window resets; Twilio sends Retry-After
    on some 429/503 answers. Returns None when the provider gave no usable hint.
    """
    if not headers:
        return None
    current = time.time() if now is None else now
    value = _header(headers, "Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - current)
        except (TypeError, ValueError):
            pass
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - current)
        except ValueError:
            return None
    return None


@contextmanager
def map_provider_errors(provider: str, *, response_headers: HeadersSource | None = None) -> Iterator[None]:
    """Re-raise SDK and transport exceptions from the block as `WinbackProviderError` subclasses.

    `response_headers` returns the failed response's headers when the SDK's exception does not carry them
    (Twilio's does not; the adapter's HTTP client remembers them per thread), for Retry-After.
    """
    try:
        yield
    except WinbackProviderError:
        raise
    except sendgrid_errors.HTTPError as exc:
        raise _from_status(
            provider,
            int(exc.status_code),
            _sendgrid_reason(exc.body),
            provider_code=str(exc.status_code),
            headers=_as_mapping(exc.headers),
        ) from exc
    except TwilioRestException as exc:
        raise _from_twilio(provider, exc.status, exc.code, _twilio_reason(exc.msg), response_headers) from exc
    except TwilioServiceException as exc:
        reason = exc.detail or exc.title
        raise _from_twilio(provider, exc.status, exc.code, reason, response_headers) from exc
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise ProviderUnavailable(provider, f"cannot reach {provider}: {_transport_reason(exc)}") from exc
    except requests.RequestException as exc:
        # Invalid URL, missing schema, ...: our configuration, not the provider's state; retrying won't help.
        raise ProviderRejected(provider, f"request to {provider} not sent: {type(exc).__name__}") from exc
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise ProviderUnavailable(provider, f"cannot reach {provider}: {_transport_reason(exc)}") from exc


def _from_status(
    provider: str,
    status: int,
    reason: str,
    *,
    provider_code: str | None,
    headers: Mapping[str, str] | None,
) -> WinbackProviderError:
    reason = redact_text(reason) or f"HTTP {status}"
    if status == 429:
        return ProviderRateLimited(
            provider,
            reason,
            http_status=status,
            provider_code=provider_code,
            retry_after=parse_retry_after(headers),
        )
    if status >= 500:
        return ProviderServerError(
            provider,
            reason,
            http_status=status,
            provider_code=provider_code,
            retry_after=parse_retry_after(headers),
        )
    if status in (401, 403):
        return ProviderAuthError(provider, reason, http_status=status, provider_code=provider_code)
    return ProviderRejected(provider, reason, http_status=status, provider_code=provider_code)


def _from_twilio(
    provider: str,
    status: int,
    code: int | None,
    reason: str,
    response_headers: HeadersSource | None,
) -> WinbackProviderError:
    if code == TWILIO_OPTED_OUT_CODE:
        return RecipientOptedOut(provider, OPTED_OUT_REASON, http_status=status, provider_code=str(code))
    headers = response_headers() if response_headers else None
    return _from_status(
        provider,
        int(status),
        reason,
        provider_code=str(code) if code is not None else None,
        headers=headers,
    )


def _sendgrid_reason(body: bytes | str | None) -> str:
    """SendGrid answers `{"errors": [{"message", "field"}]}`; join them into one line."""
    if not body:
        return ""
    try:
        payload: Any = json.loads(body)
        errors = payload.get("errors") or []
        parts = [
            f"{e.get('message', '')} ({e['field']})" if e.get("field") else str(e.get("message", ""))
            for e in errors
            if isinstance(e, dict)
        ]
        return "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return text[:200]


def _twilio_reason(msg: str) -> str:
    """The SDK prefixes the API's message with 'Unable to create record: '; keep the API's own words."""
    prefix, sep, rest = msg.partition(": ")
    return rest if sep and prefix.startswith("Unable to ") else msg


def _transport_reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    return type(inner).__name__ if isinstance(inner, BaseException) else type(exc).__name__


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _as_mapping(headers: Any) -> Mapping[str, str] | None:
    """`urllib` hands back an `HTTPMessage`; it is a case-insensitive mapping already."""
    return headers if headers is not None and hasattr(headers, "get") else None
