"""The SendGrid adapter, driven through the real SDK against the local Mail Send stand-in."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import python_http_client.exceptions as sendgrid_errors
from standins import SENDGRID_SPEC, compiled_validator, pointer, require_specs, sendgrid_api
from standins.sendgrid_api import DEFAULT_API_KEY, SendGridStandin, running_sendgrid_standin
from standins.server import unused_local_url

from winback.channels.errors import (
    ProviderRateLimited,
    ProviderRejected,
    WinbackProviderError,
    map_provider_errors,
    parse_retry_after,
)
from winback.channels.outcomes import Failed, OutgoingMessage, Sent
from winback.channels.sendgrid import (
    SendGridChannel,
    SendGridSettings,
    build_mail_body,
    list_unsubscribe_headers,
)
from winback.messages.redact import mask_email, redact_text

sendgrid_standin = sendgrid_api.sendgrid_standin

POSTAL = "Winback Ltd, 1 Example Street, Springfield"


def email(**overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": "msg-0001",
        "channel": "email",
        "to": "jane.doe@example.com",
        "subject": "We miss you, Jane",
        "text": "Hi Jane, here is 20% off your next order.",
        "html": "<html><body><p>Hi Jane, here is <b>20%</b> off your next order.</p></body></html>",
        "campaign_id": "camp-42",
        "customer_id": "cust-7",
        "unsubscribe_url": "https://winback.example/u/tok123",
        "categories": ("winback", "camp-42"),
    }
    return OutgoingMessage(**{**values, **overrides})


@pytest.fixture
def channel(sendgrid_standin: SendGridStandin) -> SendGridChannel:
    return SendGridChannel(sendgrid_standin.settings(unsubscribe_mailto="unsubscribe@winback.example"))


# -- success path ----------------------------------------------------------------------------------


def test_send_is_accepted_and_returns_the_x_message_id(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    outcome = channel.send(email())

    [exchange] = sendgrid_standin.received
    assert exchange.status == 202
    assert exchange.response is not None and exchange.response.body == b""
    assert outcome == Sent("sendgrid", exchange.response.headers["X-Message-Id"])
    assert len(outcome.provider_message_id or "") == 22


def test_request_carries_auth_personalization_custom_args_and_both_parts(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    channel.send(email())

    [exchange] = sendgrid_standin.received
    assert exchange.request.method == "POST" and exchange.request.path == "/v3/mail/send"
    assert exchange.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert exchange.headers["content-type"] == "application/json"
    body = exchange.json()
    assert body["from"] == {"email": "offers@winback.example", "name": "Winback"}
    assert body["subject"] == "We miss you, Jane"
    [personalization] = body["personalizations"]
    assert personalization["to"] == [{"email": "jane.doe@example.com"}]
    assert personalization["custom_args"] == {
        "winback_message_id": "msg-0001",
        "campaign_id": "camp-42",
        "customer_id": "cust-7",
    }
    assert "custom_args" not in body  # the description types the top-level one as a string
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["winback", "camp-42"]


def test_one_click_unsubscribe_headers(channel: SendGridChannel, sendgrid_standin: SendGridStandin) -> None:
    channel.send(email())

    headers = sendgrid_standin.received[0].json()["headers"]
    assert headers == {
        "List-Unsubscribe": "<https://winback.example/u/tok123>, <mailto:unsubscribe@winback.example>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_no_unsubscribe_headers_without_an_unsubscribe_url(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    assert isinstance(channel.send(email(unsubscribe_url=None)), Sent)
    assert "headers" not in sendgrid_standin.received[0].json()


def test_one_click_post_header_only_for_https() -> None:
    assert list_unsubscribe_headers("http://winback.example/u/1") == {
        "List-Unsubscribe": "<http://winback.example/u/1>"
    }
    assert list_unsubscribe_headers("https://w.example/u/1", "mailto:u@w.example")["List-Unsubscribe"] == (
        "<https://w.example/u/1>, <mailto:u@w.example>"
    )


def test_postal_address_is_appended_to_both_parts(channel: SendGridChannel, sendgrid_standin: SendGridStandin) -> None:
    channel.send(email())

    text, html = (part["value"] for part in sendgrid_standin.received[0].json()["content"])
    assert text.startswith("Hi Jane, here is 20% off your next order.")
    assert text.rstrip().endswith(POSTAL)
    assert f'<p class="postal-address">{POSTAL}</p></body></html>' in html


def test_postal_address_is_not_duplicated_when_the_template_shows_it() -> None:
    settings = SendGridSettings(api_key="k", from_email="a@winback.example", postal_address="Winback Ltd\n1 Example St")
    message = email(
        text="Hi.\nWinback Ltd\n1 Example St",
        html="<p>Hi.</p><footer>Winback Ltd<br>1 Example St</footer>",
    )
    body = build_mail_body(message, settings)
    assert [part["value"] for part in body["content"]] == [message.text, message.html]


def test_text_only_message_has_one_part(channel: SendGridChannel, sendgrid_standin: SendGridStandin) -> None:
    assert isinstance(channel.send(email(html=None)), Sent)
    assert [part["type"] for part in sendgrid_standin.received[0].json()["content"]] == ["text/plain"]


def test_categories_are_deduplicated_and_capped_at_ten(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    categories = (*(f"c{i}" for i in range(12)), "c0", "")
    assert isinstance(channel.send(email(categories=categories)), Sent)
    assert sendgrid_standin.received[0].json()["categories"] == [f"c{i}" for i in range(10)]


def test_empty_ids_are_left_out_of_custom_args(channel: SendGridChannel, sendgrid_standin: SendGridStandin) -> None:
    channel.send(email(campaign_id="", customer_id=""))
    assert sendgrid_standin.received[0].json()["personalizations"][0]["custom_args"] == {
        "winback_message_id": "msg-0001"
    }


def test_a_message_for_another_channel_is_a_programming_error(channel: SendGridChannel) -> None:
    with pytest.raises(ValueError, match="sms"):
        channel.send(email(channel="sms"))


# -- refusals and outages --------------------------------------------------------------------------


def test_rate_limit_is_retryable_with_the_retry_after_hint(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    sendgrid_standin.fail_next(429, retry_after=7)

    assert channel.send(email()) == Failed("too many requests", True, 7.0, "429")
    assert isinstance(channel.send(email()), Sent)  # only the next one was limited


def test_rate_limit_without_retry_after_uses_the_rate_limit_reset(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin
) -> None:
    sendgrid_standin.fail_next(429)

    outcome = channel.send(email())
    assert isinstance(outcome, Failed) and outcome.retryable
    assert outcome.retry_after is not None and 0 <= outcome.retry_after <= 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(channel: SendGridChannel, sendgrid_standin: SendGridStandin, status: int) -> None:
    sendgrid_standin.fail_next(status, times=2)

    for _ in range(2):
        outcome = channel.send(email())
        assert isinstance(outcome, Failed)
        assert (outcome.retryable, outcome.provider_code) == (True, str(status))
    assert isinstance(channel.send(email()), Sent)


def test_bad_request_is_not_retryable_and_carries_the_api_reason(channel: SendGridChannel) -> None:
    outcome = channel.send(email(to="not-an-address"))

    assert outcome == Failed("Does not contain a valid address. (personalizations.0.to.0.email)", False, None, "400")


def test_missing_subject_is_refused_by_the_api(channel: SendGridChannel) -> None:
    outcome = channel.send(email(subject=None))
    assert isinstance(outcome, Failed) and not outcome.retryable
    assert outcome.reason.startswith("The subject is required.")


def test_wrong_api_key_is_an_auth_failure(sendgrid_standin: SendGridStandin) -> None:
    channel = SendGridChannel(sendgrid_standin.settings(api_key="SG.wrong"))

    outcome = channel.send(email())
    assert outcome == Failed("The provided authorization grant is invalid, expired, or revoked", False, None, "401")


def test_connection_refused_is_retryable() -> None:
    settings = SendGridSettings(
        api_key="k", from_email="a@winback.example", postal_address=POSTAL, api_host=unused_local_url()
    )
    outcome = SendGridChannel(settings).send(email())
    assert isinstance(outcome, Failed)
    assert outcome.retryable and outcome.reason == "cannot reach sendgrid: ConnectionRefusedError"


def test_dropped_connection_is_retryable(channel: SendGridChannel, sendgrid_standin: SendGridStandin) -> None:
    sendgrid_standin.disconnect_next()

    outcome = channel.send(email())
    assert isinstance(outcome, Failed) and outcome.retryable and outcome.provider_code is None


def test_a_provider_that_never_answers_times_out_as_retryable() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        host, port = silent.getsockname()
        settings = SendGridSettings(
            api_key="k",
            from_email="a@winback.example",
            postal_address=POSTAL,
            api_host=f"http://{host}:{port}",
            timeout_seconds=0.2,
        )
        started = time.monotonic()
        outcome = SendGridChannel(settings).send(email())
    assert isinstance(outcome, Failed) and outcome.retryable
    assert time.monotonic() - started < 2


def test_error_mapping_redacts_addresses_in_reasons() -> None:
    body = json.dumps({"errors": [{"message": "jane.doe@example.com bounced", "field": None}]}).encode()
    with pytest.raises(ProviderRejected) as caught, map_provider_errors("sendgrid"):
        raise sendgrid_errors.BadRequestsError(400, "Bad Request", body, {})
    assert caught.value.reason == "j***@example.com bounced"
    assert isinstance(caught.value.__cause__, sendgrid_errors.BadRequestsError)


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"Retry-After": "120"}, now=0) == 120.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=40) == 60.0
    assert parse_retry_after({"X-RateLimit-Reset": "1000"}, now=990) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}, now=0) is None
    assert parse_retry_after(None) is None
    with pytest.raises(ProviderRateLimited) as caught, map_provider_errors("sendgrid"):
        raise sendgrid_errors.TooManyRequestsError(429, "Too Many", b"", {"Retry-After": "3"})
    assert caught.value.to_failed() == Failed("HTTP 429", True, 3.0, "429")
    assert isinstance(caught.value, WinbackProviderError)


def test_logs_never_hold_the_full_address(
    channel: SendGridChannel, sendgrid_standin: SendGridStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="winback.channels.sendgrid")
    channel.send(email())
    sendgrid_standin.fail_next(500)
    channel.send(email())

    assert "jane.doe@example.com" not in caplog.text
    assert caplog.text.count("j***@example.com") == 2


def test_mask_email() -> None:
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email(" j@example.com ") == "j***@example.com"
    assert mask_email("@example.com") == "***@example.com"
    assert mask_email("no-at-sign") == "***"
    assert redact_text("to a.b@x.example and +447700900123, code 21211") == (
        "to a***@x.example and +4477*****23, code 21211"
    )


# -- settings --------------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    assert SendGridSettings.from_env({}) is None
    with pytest.raises(ValueError, match="WINBACK_POSTAL_ADDRESS"):
        SendGridSettings.from_env({"SENDGRID_API_KEY": "SG.x", "WINBACK_EMAIL_FROM": "a@w.example"})
    settings = SendGridSettings.from_env(
        {
            "SENDGRID_API_KEY": "SG.secret",
            "WINBACK_EMAIL_FROM": "Winback Offers <offers@w.example>",
            "WINBACK_POSTAL_ADDRESS": POSTAL,
            "WINBACK_UNSUBSCRIBE_MAILTO": "u@w.example",
        }
    )
    assert settings is not None
    assert (settings.from_email, settings.from_name) == ("offers@w.example", "Winback Offers")
    assert (settings.api_host, settings.unsubscribe_mailto) == ("https://api.sendgrid.com", "u@w.example")
    assert "SG.secret" not in repr(settings)


# -- the stand-in itself: raw requests, as any client could send them ------------------------------

Mutation = Callable[[dict[str, Any]], None]


def valid_mail() -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": "jane@example.com"}], "custom_args": {"winback_message_id": "m-1"}}],
        "from": {"email": "offers@winback.example"},
        "subject": "We miss you",
        "content": [{"type": "text/plain", "value": "Hi"}, {"type": "text/html", "value": "<p>Hi</p>"}],
    }


def _set(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = body
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(key: str) -> Mutation:
    return lambda body: body.pop(key)


REJECTED: list[tuple[str, Mutation, str]] = [
    # what the description rejects
    ("no personalizations", _delete("personalizations"), "personalizations"),
    ("no from", _delete("from"), "from"),
    ("personalizations not an array", _set("personalizations", "jane@example.com"), "personalizations"),
    (
        "recipient without email",
        _set("personalizations.0.to", [{"name": "Jane"}]),
        "personalizations.0.to.0.email",
    ),
    ("eleven categories", _set("categories", [f"c{i}" for i in range(11)]), "categories"),
    ("category not a string", _set("categories", [1]), "categories.0"),
    ("asm without group_id", _set("asm", {"groups_to_display": [1]}), "asm.group_id"),
    ("top-level custom_args object", _set("custom_args", {"a": "b"}), "custom_args"),
    ("empty content value", _set("content.0.value", ""), "content.0.value"),
    # business rules the description cannot state
    ("no personalization", _set("personalizations", []), "personalizations"),
    (
        "custom arg not a string",
        _set("personalizations.0.custom_args.n", 5),
        "personalizations.0.custom_args.n",
    ),
    (
        "custom args too big",
        _set("personalizations.0.custom_args.big", "x" * 10_000),
        "personalizations.0.custom_args",
    ),
    (
        "1001 recipients",
        _set("personalizations.0.bcc", [{"email": f"r{i}@example.com"} for i in range(1000)]),
        "personalizations",
    ),
    (
        "same address twice",
        _set("personalizations.0.cc", [{"email": "JANE@example.com"}]),
        "personalizations.0.cc.0.email",
    ),
    ("send_at beyond 72 h", _set("send_at", int(time.time()) + 73 * 3600), "send_at"),
    ("no content, no template", _delete("content"), "content"),
    (
        "html before text",
        _set("content", [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]),
        "content",
    ),
    ("no subject anywhere", _delete("subject"), "subject"),
    ("reserved header", _set("headers", {"Subject": "spoof"}), "headers.Subject"),
    ("from not an address", _set("from", {"email": "offers@"}), "from.email"),
]


@pytest.fixture(params=["jsonschema", "openapi-core"])
def any_standin(request: pytest.FixtureRequest) -> Iterator[SendGridStandin]:
    require_specs()
    with running_sendgrid_standin(validator=request.param) as standin:
        yield standin


def post(standin: SendGridStandin, body: Any, **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {standin.api_key}", **headers}
    return httpx.post(f"{standin.url}/v3/mail/send", json=body, headers=headers, timeout=5)


def test_the_untouched_payload_is_accepted(any_standin: SendGridStandin) -> None:
    response = post(any_standin, valid_mail())
    assert (response.status_code, response.content) == (202, b"")
    assert response.headers["X-Message-Id"]


@pytest.mark.parametrize(("case", "mutate", "field"), REJECTED, ids=[c[0] for c in REJECTED])
def test_the_standin_rejects_what_sendgrid_rejects(
    any_standin: SendGridStandin, case: str, mutate: Mutation, field: str
) -> None:
    body = valid_mail()
    mutate(body)

    response = post(any_standin, body)

    assert response.status_code == 400, case
    errors = response.json()["errors"]
    assert errors and all(set(e) == {"message", "field"} and isinstance(e["message"], str) for e in errors)
    assert field in {e["field"] for e in errors}
    error_schema = compiled_validator(SENDGRID_SPEC, pointer("components", "schemas", "ErrorResponse"))
    assert not list(error_schema.iter_errors(response.json()))  # fields are set here, so no `null` issue


def test_missing_personalizations_gets_sendgrids_message(any_standin: SendGridStandin) -> None:
    body = valid_mail()
    del body["personalizations"]
    assert post(any_standin, body).json() == {
        "errors": [
            {
                "message": ("The personalizations field is required and must have at least one personalization."),
                "field": "personalizations",
            }
        ]
    }


def test_send_at_within_72_hours_is_accepted(any_standin: SendGridStandin) -> None:
    body = {**valid_mail(), "send_at": int(time.time()) + 71 * 3600}
    assert post(any_standin, body).status_code == 202


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": ""}, "authorization required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "authorization required"),
        (
            {"Authorization": "Bearer SG.wrong"},
            "The provided authorization grant is invalid, expired, or revoked",
        ),
    ],
)
def test_bearer_auth_is_required(sendgrid_standin: SendGridStandin, headers: dict[str, str], message: str) -> None:
    response = post(sendgrid_standin, valid_mail(), **headers)
    assert (response.status_code, response.json()) == (401, {"errors": [{"message": message, "field": None}]})


def test_malformed_bodies_are_bad_requests(sendgrid_standin: SendGridStandin) -> None:
    url = f"{sendgrid_standin.url}/v3/mail/send"
    auth = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    not_json = httpx.post(url, content=b"{personalizations:", headers={**auth, "Content-Type": "application/json"})
    as_form = httpx.post(url, data={"subject": "x"}, headers=auth)
    assert (not_json.status_code, not_json.json()["errors"][0]["message"]) == (400, "Bad Request")
    assert (as_form.status_code, as_form.json()["errors"][0]["message"]) == (
        400,
        "Content-Type should be application/json.",
    )


def test_routes_and_methods(sendgrid_standin: SendGridStandin) -> None:
    auth = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
    assert httpx.get(f"{sendgrid_standin.url}/v3/mail/send", headers=auth).status_code == 405
    assert httpx.post(f"{sendgrid_standin.url}/v3/mail/sned", headers=auth, json={}).status_code == 404


def test_gzip_bodies_are_accepted(sendgrid_standin: SendGridStandin) -> None:
    response = httpx.post(
        f"{sendgrid_standin.url}/v3/mail/send",
        content=gzip.compress(json.dumps(valid_mail()).encode()),
        headers={
            "Authorization": f"Bearer {DEFAULT_API_KEY}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 202
    assert sendgrid_standin.accepted[0].request.body[:2] == b"\x1f\x8b"
    assert sendgrid_standin.accepted[0].json() == valid_mail()


def test_both_validators_give_the_same_answers() -> None:
    require_specs()
    cases = [valid_mail()]
    for _, mutate, _ in REJECTED:
        body = valid_mail()
        mutate(body)
        cases.append(body)
    with (
        running_sendgrid_standin(validator="jsonschema") as fast,
        running_sendgrid_standin(validator="openapi-core") as reference,
    ):
        for body in cases:
            a, b = post(fast, body), post(reference, body)
            assert a.status_code == b.status_code
            assert (a.json() if a.content else None) == (b.json() if b.content else None)


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_specs_skip_locally_but_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("WINBACK_SPECS_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"sendgrid_mail_v3\.json not found"):
        require_specs()
