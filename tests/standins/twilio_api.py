"""A local Twilio Messages API (`POST` and `GET /2010-04-01/Accounts/{AccountSid}/Messages.json`, 2010-04-01).

Order of checks, as the real API: injected fault, route, HTTP Basic auth with the account sid and auth token
(401, code 20003), the published description (400), then the rules the description cannot state (400), then
201 with a Message resource. Every error answer has Twilio's shape `{code, message, more_info, status}`.

Rules on top of the description (see shared/specs/README.md):
    21603  neither From nor MessagingServiceSid
    21602  none of Body, MediaUrl, ContentSid
    21617  Body longer than 1600 characters
    21211  To not in E.164, or Twilio's magic test number +15005550001
    21212  From neither E.164 nor an alphanumeric sender id, or +15005550001
    21610  To replied STOP: +15005550004, plus any number passed to `opt_out()`
Description violations map to the nearest Twilio code (21604 To missing, 21211 To, 21212 From, 21609
StatusCallback, 21620 MediaUrl); the rest get 20001, the stand-in's catch-all.

The Messages list (`GET`) shows every accepted message as sent at once (see `twilio_list`) after the same
auth; `unlist(sid)` hides one (a provider that has not made it visible yet).
"""

from __future__ import annotations

import email.utils
import functools
import hmac
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from winback.messages.sms_segments import count_segments

from . import (
    TWILIO_SPEC,
    ValidatorName,
    Violation,
    compiled_validator,
    load_spec,
    openapi_core_app,
    openapi_core_violations,
    pointer,
    request_body_fragment,
    require_specs,
    schema_violations,
    twilio_list,
)
from .server import Exchange, ProviderStandin, Request, Response, running

if TYPE_CHECKING:
    from winback.channels.twilio import TwilioSettings

MESSAGES_TEMPLATE = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
_MESSAGES_RE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fedcba9876543210" * 2
VALID_TEST_FROM = "+15005550006"
INVALID_TEST_NUMBER = "+15005550001"
OPTED_OUT_TEST_NUMBER = "+15005550004"
MAX_BODY_CHARS = 1600
FORM = "application/x-www-form-urlencoded"
_E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
_ALPHANUMERIC_SENDER_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_TRUE = ("y", "yes", "t", "true", "on", "1")  # what openapi-core accepts, so both validators agree
_FALSE = ("n", "no", "f", "false", "off", "0")
_OPERATION = ("paths", MESSAGES_TEMPLATE, "post")

ERRORS: dict[int, str] = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21212: "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21620: "Invalid media URL(s)",
}
_FIELD_CODES = {"To": 21211, "From": 21212, "StatusCallback": 21609, "MediaUrl": 21620}


class TwilioError(Exception):
    """Raised inside `handle` to answer with a Twilio error."""

    def __init__(self, status: int, code: int, message: str | None = None) -> None:
        super().__init__(message or ERRORS.get(code, "Error"))
        self.status, self.code = status, code


class TwilioStandin(ProviderStandin):
    """The stand-in's state and knobs; `handle` is the whole API as a function (usable without HTTP)."""

    name = "Twilio"
    accepted_status = 201

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        validator: ValidatorName = "jsonschema",
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = validator
        self.opted_out: set[str] = {OPTED_OUT_TEST_NUMBER}
        self.listed: list[dict[str, Any]] = []  # accepted messages as the list shows them, oldest first
        self.unlisted: set[str] = set()
        self._lock = threading.Lock()

    # -- what tests use -------------------------------------------------------------------------------------
    @property
    def creates(self) -> list[Exchange]:
        """The create requests (POST) only, whatever their answer: the sends that were attempted."""
        return [e for e in self.received if e.request.method == "POST"]

    @property
    def lookups(self) -> list[Exchange]:
        """The list requests (GET)."""
        return [e for e in self.received if e.request.method == "GET"]

    def unlist(self, sid: str) -> None:
        """The Messages list stops showing this accepted message."""
        with self._lock:
            self.unlisted.add(sid)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None, code: int | None = None) -> None:
        """The next `times` requests get `status` (Twilio code: `code`, else 20429/20500/20503/20001)."""
        self.faults.fail_next(status, times, retry_after, code)

    def opt_out(self, number: str) -> None:
        """`number` replied STOP: sends to it now fail with 21610."""
        with self._lock:
            self.opted_out.add(number)

    def settings(self, **overrides: Any) -> TwilioSettings:
        """Adapter settings aimed at this stand-in, sending from Twilio's valid test number."""
        from winback.channels.twilio import TwilioSettings

        values: dict[str, Any] = {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "api_base_url": self.url,
            "from_number": VALID_TEST_FROM,
            "timeout_seconds": 5.0,
        }
        return TwilioSettings(**{**values, **overrides})

    # -- the API --------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        fault = self.faults.take()
        if fault is not None:
            if fault.status is None:
                return None
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return _error(fault.status, fault.code or _default_code(fault.status), None, headers)
        try:
            if request.method == "GET" and _MESSAGES_RE.match(request.path):
                return self._list_messages(request)
            return self._create_message(request)
        except TwilioError as exc:
            return _error(exc.status, exc.code, str(exc))

    def _create_message(self, request: Request) -> Response:
        match = _MESSAGES_RE.match(request.path)
        if not match:
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
        if request.method != "POST":
            raise TwilioError(405, 20004, "Method not allowed")
        credentials = request.basic_auth()
        if credentials is None or not self._authentic(*credentials) or match.group(1) != self.account_sid:
            raise TwilioError(401, 20003)
        form = request.form()
        fields = {k: v[-1] for k, v in form.items()}
        violations = self.contract_violations(request, match.group(1))
        if violations:
            raise _violation_error(violations[0], fields)
        media = form.get("MediaUrl", [])
        _check_business_rules(fields, media, self._is_opted_out(fields["To"]))
        resource = self._message_resource(fields, len(media))
        with self._lock:
            self.listed.append({**resource, "date_sent": resource["date_created"], "status": "sent"})
        return Response.json(201, resource)

    def _list_messages(self, request: Request) -> Response:
        match = _MESSAGES_RE.match(request.path)
        assert match is not None
        credentials = request.basic_auth()
        if credentials is None or not self._authentic(*credentials) or match.group(1) != self.account_sid:
            raise TwilioError(401, 20003)
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        violations = twilio_list.list_violations(self.validator, request, match.group(1), query)
        if violations:
            v = violations[0]
            raise TwilioError(400, 20001, f"Invalid parameter ({'.'.join(map(str, v.path)) or 'query'}: {v.message})")
        with self._lock:
            shown = [m for m in self.listed if m["sid"] not in self.unlisted]
        return Response.json(200, twilio_list.list_page(shown, request, query))

    def contract_violations(self, request: Request, account_sid: str) -> list[Violation]:
        """What the published description rejects, by the configured validator."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if self.validator == "openapi-core":
            app = openapi_core_app(TWILIO_SPEC, (MESSAGES_TEMPLATE,))
            return openapi_core_violations(app, "POST", request.path, request.headers, request.body, content_type)
        if content_type != FORM:
            return [Violation((), f"unsupported media type {content_type or '(none)'}", "media-type")]
        body, cast_errors = cast_form(request.form())
        body_schema = compiled_validator(
            TWILIO_SPEC, request_body_fragment(TWILIO_SPEC, MESSAGES_TEMPLATE, "post", FORM)
        )
        return [
            *schema_violations(_account_sid_validator().iter_errors(account_sid), ("AccountSid",)),
            *cast_errors,
            *schema_violations(body_schema.iter_errors(body)),
        ]

    def _authentic(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user.encode(), self.account_sid.encode()) and hmac.compare_digest(
            password.encode(), self.auth_token.encode()
        )

    def _is_opted_out(self, number: str) -> bool:
        with self._lock:
            return number in self.opted_out

    def _message_resource(self, fields: dict[str, str], num_media: int) -> dict[str, Any]:
        """A Message resource as the real API returns it on create."""
        sid = "SM" + secrets.token_hex(16)
        now = email.utils.format_datetime(datetime.now(UTC))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        service = fields.get("MessagingServiceSid")
        body = fields.get("Body", "")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None if service else fields.get("From"),
            "messaging_service_sid": service,
            "num_media": str(num_media),
            "num_segments": str(count_segments(body) if body else 1),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": fields["To"],
            "uri": uri,
        }


def running_twilio_standin(
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    validator: ValidatorName = "jsonschema",
) -> AbstractContextManager[TwilioStandin]:
    """A Twilio stand-in running for a `with` block; fails after it if the stand-in crashed on a request."""
    return running(TwilioStandin(account_sid=account_sid, auth_token=auth_token, validator=validator))


@pytest.fixture
def twilio_standin() -> Iterator[TwilioStandin]:
    """A running Twilio stand-in for one test (skips, or fails under CI, without the specs)."""
    require_specs()
    with running_twilio_standin() as standin:
        yield standin


def cast_form(form: dict[str, list[str]]) -> tuple[dict[str, Any], list[Violation]]:
    """Form fields typed as the description's schema says (what openapi-core does before validating)."""
    types = _form_types()
    body: dict[str, Any] = {}
    errors: list[Violation] = []
    for name, values in form.items():
        kind = types.get(name, "string")
        try:
            body[name] = values if kind == "array" else _cast(kind, values[-1])
        except ValueError:
            errors.append(Violation((name,), f"Failed to cast value to {kind} type: {values[-1]}", "cast"))
    return body, errors


def _check_business_rules(fields: dict[str, str], media: list[str], opted_out: bool) -> None:
    to, sender, body = fields["To"], fields.get("From"), fields.get("Body", "")
    if not sender and not fields.get("MessagingServiceSid"):
        raise TwilioError(400, 21603)
    if not body and not media and not fields.get("ContentSid"):
        raise TwilioError(400, 21602)
    if len(body) > MAX_BODY_CHARS:
        raise TwilioError(400, 21617)
    if not _E164_RE.match(to) or to == INVALID_TEST_NUMBER:
        raise TwilioError(400, 21211, ERRORS[21211].format(to=to))
    if sender and (
        sender == INVALID_TEST_NUMBER or not (_E164_RE.match(sender) or _ALPHANUMERIC_SENDER_RE.match(sender))
    ):
        raise TwilioError(400, 21212, ERRORS[21212].format(from_=sender))
    if opted_out:
        raise TwilioError(400, 21610)


def _violation_error(violation: Violation, fields: dict[str, str]) -> TwilioError:
    field = str(violation.path[0]) if violation.path else ""
    if field == "To" and violation.keyword == "required":
        return TwilioError(400, 21604)
    code = _FIELD_CODES.get(field, 20001)
    detail = ERRORS[code].format(to=fields.get("To", ""), from_=fields.get("From", ""))
    return TwilioError(400, code, f"{detail} ({field or 'request'}: {violation.message})")


def _error(status: int, code: int, message: str | None, headers: dict[str, str] | None = None) -> Response:
    payload = {
        "code": code,
        "message": message or ERRORS.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response.json(status, payload, headers)


def _default_code(status: int) -> int:
    return {429: 20429, 500: 20500, 503: 20503, 404: 20404, 401: 20003}.get(status, 20001)


def _cast(kind: str, value: str) -> Any:
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(value)
    return value


@functools.cache
def _form_types() -> dict[str, str]:
    """Property name -> JSON type of the request body schema, $refs to enum schemas resolved."""
    spec: Any = load_spec(TWILIO_SPEC)
    schema = spec["paths"][MESSAGES_TEMPLATE]["post"]["requestBody"]["content"][FORM]["schema"]
    types = {}
    for name, prop in schema["properties"].items():
        if "$ref" in prop:
            prop = spec["components"]["schemas"][prop["$ref"].rsplit("/", 1)[-1]]
        types[name] = prop.get("type", "string")
    return types


@functools.cache
def _account_sid_validator() -> Any:
    spec: Any = load_spec(TWILIO_SPEC)
    parameters = spec["paths"][MESSAGES_TEMPLATE]["post"].get("parameters", [])
    index = next(i for i, p in enumerate(parameters) if p.get("name") == "AccountSid")
    return compiled_validator(TWILIO_SPEC, pointer(*_OPERATION, "parameters", str(index), "schema"))
