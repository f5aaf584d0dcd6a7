"""A local SendGrid v3 Mail Send API (`POST /v3/mail/send`) that behaves like the real one.

Order of checks, as the real API: injected fault, route, `Authorization: Bearer <key>` (401), body decoding,
the published description (400), then the rules the description cannot state (400), then 202 with an empty
body and an `X-Message-Id` header. Every error answer has SendGrid's shape
`{"errors": [{"message": ..., "field": ...}]}`.

Business rules enforced on top of the description (see shared/specs/README.md):
- at least one personalization; at most 1000 recipients (to+cc+bcc) per request; each address once per
  personalization; addresses must look like addresses (the description's `format: email` only wants an '@')
- custom_args values are strings, and under 10,000 bytes per personalization
- `send_at` at most 72 h ahead
- `content` unless `template_id`; text/plain before text/html
- `subject` unless `template_id` or every personalization has one
- no reserved headers (To, From, Subject, Content-Type, ...), header values are strings
(≤10 categories and `asm.group_id` are in the description itself.)
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest

from . import (
    SENDGRID_SPEC,
    ValidatorName,
    Violation,
    compiled_validator,
    openapi_core_app,
    openapi_core_violations,
    request_body_fragment,
    require_specs,
    schema_violations,
)
from .server import ProviderStandin, Request, Response, running

if TYPE_CHECKING:
    from winback.channels.sendgrid import SendGridSettings

MAIL_SEND_PATH = "/v3/mail/send"
DEFAULT_API_KEY = "SG.standin-key.not-a-secret"
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
_ADDRESS_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_FRIENDLY = {
    ("required", "personalizations"): (
        "The personalizations field is required and must have at least one personalization."
    ),
    ("required", "from"): "The from object must be provided for every email send.",
    ("format", "email"): "Does not contain a valid address.",
}


class SendGridStandin(ProviderStandin):
    """The stand-in's state and knobs; `handle` is the whole API as a function (usable without HTTP)."""

    name = "SendGrid"
    accepted_status = 202

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        validator: ValidatorName = "jsonschema",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.validator = validator
        self.clock = clock

    # -- what tests use -------------------------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` requests get `status` (with Retry-After when given) instead of being processed."""
        self.faults.fail_next(status, times, retry_after)

    def settings(self, **overrides: Any) -> SendGridSettings:
        """Adapter settings aimed at this stand-in (sender and postal address have harmless defaults)."""
        from winback.channels.sendgrid import SendGridSettings

        values: dict[str, Any] = {
            "api_key": self.api_key,
            "api_host": self.url,
            "from_email": "offers@winback.example",
            "from_name": "Winback",
            "postal_address": "Winback Ltd, 1 Example Street, Springfield",
            "timeout_seconds": 5.0,
        }
        return SendGridSettings(**{**values, **overrides})

    # -- the API --------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        fault = self.faults.take()
        if fault is not None:
            return None if fault.status is None else _fault_response(fault.status, fault.retry_after)
        if request.path != MAIL_SEND_PATH:
            return _errors(404, [(None, "not found")])
        if request.method != "POST":
            return _errors(405, [(None, "method not allowed")])
        token = request.bearer_token()
        if token is None:
            return _errors(401, [(None, "authorization required")])
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):
            return _errors(401, [(None, "The provided authorization grant is invalid, expired, or revoked")])
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            return _errors(400, [(None, "Content-Type should be application/json.")])
        raw = _decoded_body(request)
        if raw is None:
            return _errors(400, [(None, "The request body could not be decompressed.")])
        try:
            payload = json.loads(raw)
        except ValueError:
            return _errors(400, [(None, "Bad Request")])
        violations = self.contract_violations(request, raw, payload)
        if not violations:
            violations = business_rule_violations(payload, now=self.clock())
        if violations:
            return _errors(400, [(_field(v.path), _message(v)) for v in violations])
        return Response(202, b"", {"X-Message-Id": _message_id()})

    def contract_violations(self, request: Request, raw: bytes, payload: Any) -> list[Violation]:
        """What the published description rejects, by the configured validator."""
        if self.validator == "openapi-core":
            app = openapi_core_app(SENDGRID_SPEC, (MAIL_SEND_PATH,))
            headers = {k: v for k, v in request.headers.items() if k != "content-encoding"}
            return openapi_core_violations(app, "POST", MAIL_SEND_PATH, headers, raw, "application/json")
        fragment = request_body_fragment(SENDGRID_SPEC, MAIL_SEND_PATH, "post", "application/json")
        return schema_violations(compiled_validator(SENDGRID_SPEC, fragment).iter_errors(payload))


def running_sendgrid_standin(
    *,
    api_key: str = DEFAULT_API_KEY,
    validator: ValidatorName = "jsonschema",
    clock: Callable[[], float] = time.time,
) -> AbstractContextManager[SendGridStandin]:
    """A SendGrid stand-in running for a `with` block; fails after it if the stand-in crashed on a request."""
    return running(SendGridStandin(api_key=api_key, validator=validator, clock=clock))


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandin]:
    """A running SendGrid stand-in for one test (skips, or fails under CI, without the specs)."""
    require_specs()
    with running_sendgrid_standin() as standin:
        yield standin


def business_rule_violations(payload: dict[str, Any], *, now: float) -> list[Violation]:
    """The real API's rules the description cannot state; assumes the payload passed the description."""
    found: list[Violation] = []
    personalizations = payload.get("personalizations") or []
    template_id = payload.get("template_id")
    if not personalizations:
        found.append(Violation(("personalizations",), _FRIENDLY[("required", "personalizations")], "rule"))
    recipients = 0
    for i, p in enumerate(personalizations):
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            for j, recipient in enumerate(p.get(kind) or []):
                recipients += 1
                address = str(recipient.get("email", "")).strip().lower()
                if not _ADDRESS_RE.match(address):
                    found.append(Violation(("personalizations", i, kind, j, "email"), _FRIENDLY[("format", "email")]))
                elif address in seen:
                    found.append(
                        Violation(
                            ("personalizations", i, kind, j, "email"),
                            "Each email address in the personalization block should be unique between to, cc, and bcc.",
                            "rule",
                        )
                    )
                seen.add(address)
        found += _custom_args_violations(p.get("custom_args"), payload.get("custom_args"), i)
        found += _send_at_violations(p.get("send_at"), ("personalizations", i, "send_at"), now)
        found += _header_violations(p.get("headers"), ("personalizations", i, "headers"))
    if recipients > MAX_RECIPIENTS:
        found.append(
            Violation(("personalizations",), f"The total number of recipients must be {MAX_RECIPIENTS} or less.")
        )
    for key in ("from", "reply_to"):
        sender = payload.get(key)
        if isinstance(sender, dict) and not _ADDRESS_RE.match(str(sender.get("email", "")).strip()):
            found.append(Violation((key, "email"), _FRIENDLY[("format", "email")], "rule"))
    found += _send_at_violations(payload.get("send_at"), ("send_at",), now)
    found += _header_violations(payload.get("headers"), ("headers",))
    found += _content_violations(payload.get("content"), template_id)
    if not template_id and not payload.get("subject") and not all(p.get("subject") for p in personalizations):
        found.append(
            Violation(
                ("subject",),
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.",
                "rule",
            )
        )
    return found


def _custom_args_violations(args: Any, top_level: Any, index: int) -> list[Violation]:
    if not args:
        return []
    found = [
        Violation(
            ("personalizations", index, "custom_args", key),
            f"Invalid type. Expected: string, given: {type(value).__name__}.",
            "rule",
        )
        for key, value in args.items()
        if not isinstance(value, str)
    ]
    size = len(json.dumps(args, separators=(",", ":")).encode()) + len(str(top_level or "").encode())
    if size >= MAX_CUSTOM_ARGS_BYTES:
        found.append(
            Violation(
                ("personalizations", index, "custom_args"),
                f"The custom arguments of a personalization must total less than {MAX_CUSTOM_ARGS_BYTES} bytes.",
                "rule",
            )
        )
    return found


def _send_at_violations(send_at: Any, path: tuple[str | int, ...], now: float) -> list[Violation]:
    if isinstance(send_at, int) and send_at > now + MAX_SEND_AT_AHEAD_SECONDS:
        return [Violation(path, "The send_at parameter can't be scheduled more than 72 hours in advance.", "rule")]
    return []


def _header_violations(headers: Any, path: tuple[str | int, ...]) -> list[Violation]:
    if not headers:
        return []
    found = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            found.append(Violation((*path, name), f"The header {name} is reserved and cannot be set.", "rule"))
        elif not isinstance(value, str):
            found.append(Violation((*path, name), "Invalid type. Expected: string.", "rule"))
    return found


def _content_violations(content: Any, template_id: Any) -> list[Violation]:
    if not content:
        if template_id:
            return []
        return [
            Violation(
                ("content",),
                "Unless a valid template_id is provided, the content parameter is required.",
                "rule",
            )
        ]
    types = [str(c.get("type", "")).lower() for c in content]
    if "text/plain" in types and "text/html" in types and types.index("text/plain") > types.index("text/html"):
        return [
            Violation(
                ("content",),
                "If present, text/plain and text/html may only be provided in order: text/plain, text/html.",
                "rule",
            )
        ]
    return []


def _decoded_body(request: Request) -> bytes | None:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if not encoding:
        return request.body
    if encoding != "gzip":
        return None
    try:
        return gzip.decompress(request.body)
    except (OSError, EOFError, zlib.error):
        return None


def _fault_response(status: int, retry_after: float | None) -> Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if status == 429:
        headers.update({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"})
        headers["X-RateLimit-Reset"] = str(int(time.time() + (retry_after or 1)))
        return _errors(429, [(None, "too many requests")], headers)
    message = "internal error" if status >= 500 else f"injected failure {status}"
    return _errors(status, [(None, message)], headers)


def _errors(status: int, errors: list[tuple[str | None, str]], headers: dict[str, str] | None = None) -> Response:
    return Response.json(status, {"errors": [{"message": m, "field": f} for f, m in errors]}, headers)


def _field(path: tuple[str | int, ...]) -> str | None:
    return ".".join(str(p) for p in path) or None


def _message(violation: Violation) -> str:
    last = violation.path[-1] if violation.path else ""
    return _FRIENDLY.get((violation.keyword, str(last)), violation.message)


def _message_id() -> str:
    """Like the real X-Message-Id: 22 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
