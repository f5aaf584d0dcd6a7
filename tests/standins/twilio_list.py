"""The Twilio stand-in's Messages list (`GET /2010-04-01/Accounts/{AccountSid}/Messages.json`).

What `client.messages.list(to=..., from_=..., date_sent_after=...)` and winback's lookup after a crash call.
The query is checked against the description's parameters (the compiled JSON-schema validators, or
openapi-core), then the accepted messages are filtered by To, From and DateSent / DateSent< / DateSent>
(a date matches by day, a full ISO time exactly), newest first, and paged by PageSize and Page with the
`next_page_uri` the SDK follows.
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from openapi_core.testing import MockRequest

from . import (
    STANDIN_SERVER,
    TWILIO_SPEC,
    ValidatorName,
    Violation,
    compiled_validator,
    load_spec,
    openapi_core_app,
    pointer,
    schema_violations,
)
from .server import Request

MESSAGES_TEMPLATE = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
DEFAULT_PAGE_SIZE = 50


def list_violations(
    validator: ValidatorName, request: Request, account_sid: str, query: dict[str, str]
) -> list[Violation]:
    """What the published description rejects in a list request's parameters, by `validator`."""
    if validator == "openapi-core":
        app = openapi_core_app(TWILIO_SPEC, (MESSAGES_TEMPLATE,))
        mock = MockRequest(STANDIN_SERVER, "get", request.path, args=query, headers=dict(request.headers))
        try:
            app.validate_request(mock)
        except Exception as exc:
            name = getattr(exc, "name", None)
            return [Violation((name,) if isinstance(name, str) else (), str(exc), type(exc).__name__)]
        return []
    parameters = _parameters()
    found = schema_violations(parameters["AccountSid"][1].iter_errors(account_sid), ("AccountSid",))
    for name, value in query.items():
        if name not in parameters or name == "AccountSid":
            continue
        kind, schema = parameters[name]
        try:
            typed: Any = int(value) if kind == "integer" else value
        except ValueError:
            found.append(Violation((name,), f"Failed to cast value to {kind} type: {value}", "cast"))
            continue
        found += schema_violations(schema.iter_errors(typed), (name,))
    return found


def list_page(listed: list[dict[str, Any]], request: Request, query: dict[str, str]) -> dict[str, Any]:
    """One page of the messages in `listed` (oldest first) that pass the query's filters, newest first."""
    found = [m for m in reversed(listed) if listed_by(m, query)]
    size, page = int(query.get("PageSize", DEFAULT_PAGE_SIZE)), int(query.get("Page", 0))
    messages = found[page * size : (page + 1) * size]

    def page_uri(n: int) -> str:
        kept = [(k, v) for k, v in query.items() if k not in ("Page", "PageToken", "PageSize")]
        return f"{request.path}?{urlencode([*kept, ('PageSize', size), ('Page', n), ('PageToken', f'PT{n}')])}"

    return {
        "messages": messages,
        "end": page * size + max(len(messages) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1) if (page + 1) * size < len(found) else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": page * size,
        "uri": f"{request.path}?{request.query}",
    }


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "DateSent": lambda sent, bound: sent == bound,
    "DateSent<": lambda sent, bound: sent <= bound,
    "DateSent>": lambda sent, bound: sent >= bound,
}


def listed_by(message: dict[str, Any], query: dict[str, str]) -> bool:
    """Whether a message passes the list's To, From and DateSent filters."""
    if "To" in query and message["to"] != query["To"]:
        return False
    if "From" in query and message["from"] != query["From"]:
        return False
    sent = email.utils.parsedate_to_datetime(message["date_sent"])
    for name, keep in _COMPARE.items():
        if name in query:
            bound = sent_date(query[name])
            if not keep(sent.date() if type(bound) is date else sent, bound):
                return False
    return True


def sent_date(value: str) -> datetime | date:
    """A DateSent filter's value: a date (`YYYY-MM-DD`, matched by day) or a full time (ISO 8601)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return at if at.tzinfo else at.replace(tzinfo=UTC)


@functools.cache
def _parameters() -> dict[str, tuple[str, Any]]:
    """Parameter name -> (JSON type, compiled validator of its schema) for the list operation."""
    spec: Any = load_spec(TWILIO_SPEC)
    found = {}
    for index, parameter in enumerate(spec["paths"][MESSAGES_TEMPLATE]["get"].get("parameters", [])):
        where = pointer("paths", MESSAGES_TEMPLATE, "get", "parameters", str(index), "schema")
        found[parameter["name"]] = (parameter["schema"].get("type", "string"), compiled_validator(TWILIO_SPEC, where))
    return found
