"""The Twilio SMS adapter, driven through the real SDK against the local Messages stand-in."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import insert_run
from sqlalchemy import Engine, insert, select
from standins import TWILIO_SPEC, compiled_validator, pointer, require_specs, twilio_api
from standins.server import unused_local_url
from standins.twilio_api import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    VALID_TEST_FROM,
    TwilioStandin,
    running_twilio_standin,
)
from starlette.testclient import TestClient
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from winback.app.server import ServerSettings, create_app
from winback.channels.errors import OPTED_OUT_REASON, RecipientOptedOut, map_provider_errors
from winback.channels.outcomes import Failed, OutgoingMessage, Sent
from winback.channels.twilio import (
    RedirectingTwilioHttpClient,
    TwilioChannel,
    TwilioSettings,
    status_callback_url,
)
from winback.messages.redact import mask_phone
from winback.warehouse.models import OutboxMessage

twilio_standin = twilio_api.twilio_standin

MESSAGES_PATH = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
SERVICE_SID = "MG" + "ab" * 16
CALLBACK = "https://winback.example/webhooks/twilio/status"


def sms(to: str = "+447700900123", text: str = "Hi Jane, 20% off this week. Reply STOP to opt out") -> OutgoingMessage:
    return OutgoingMessage(message_id="msg-0001", channel="sms", to=to, text=text, campaign_id="camp-42")


@pytest.fixture
def channel(twilio_standin: TwilioStandin) -> TwilioChannel:
    return TwilioChannel(twilio_standin.settings(status_callback_url=CALLBACK))


# -- success path ----------------------------------------------------------------------------------


def test_send_returns_the_message_sid(channel: TwilioChannel, twilio_standin: TwilioStandin) -> None:
    outcome = channel.send(sms())

    [exchange] = twilio_standin.received
    assert exchange.status == 201
    resource = exchange.response_json()
    assert outcome == Sent("twilio", resource["sid"])
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])


def test_request_is_basic_auth_form_post_with_status_callback(
    channel: TwilioChannel, twilio_standin: TwilioStandin
) -> None:
    channel.send(sms())

    request = twilio_standin.received[0].request
    assert (request.method, request.path) == ("POST", MESSAGES_PATH)
    assert request.basic_auth() == (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.fields() == {
        "To": "+447700900123",
        "From": VALID_TEST_FROM,
        "Body": "Hi Jane, 20% off this week. Reply STOP to opt out",
        "StatusCallback": CALLBACK + "?winback_message_id=msg-0001",  # the outbox id, for callbacks
    }


def test_the_created_resource_matches_the_description(channel: TwilioChannel, twilio_standin: TwilioStandin) -> None:
    channel.send(sms(text="x" * 161))

    resource = twilio_standin.received[0].response_json()
    schema = compiled_validator(TWILIO_SPEC, pointer("components", "schemas", "api.v2010.account.message"))
    assert not list(schema.iter_errors(resource))
    assert (resource["status"], resource["num_segments"], resource["direction"]) == (
        "queued",
        "2",
        "outbound-api",
    )
    assert resource["uri"] == f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{resource['sid']}.json"


def test_messaging_service_replaces_the_from_number(twilio_standin: TwilioStandin) -> None:
    channel = TwilioChannel(twilio_standin.settings(from_number=None, messaging_service_sid=SERVICE_SID))

    assert isinstance(channel.send(sms()), Sent)
    exchange = twilio_standin.received[0]
    assert exchange.fields()["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in exchange.fields() and "StatusCallback" not in exchange.fields()
    assert exchange.response_json()["status"] == "accepted"


@pytest.mark.parametrize(
    ("configured", "message_id", "expected"),
    [
        (CALLBACK, "msg-0001", CALLBACK + "?winback_message_id=msg-0001"),
        (CALLBACK + "?src=twilio&x=%20y", "msg-0001", CALLBACK + "?src=twilio&x=%20y&winback_message_id=msg-0001"),
        (CALLBACK + "?winback_message_id=old&src=t", "m2", CALLBACK + "?src=t&winback_message_id=m2"),
        (CALLBACK + "?", "a b/&c", CALLBACK + "?winback_message_id=a+b%2F%26c"),
        (CALLBACK + "#top", "m3", CALLBACK + "?winback_message_id=m3#top"),
    ],
    ids=["plain", "own query kept verbatim", "stale id replaced", "id encoded", "fragment last"],
)
def test_status_callback_url_carries_the_outbox_id(configured: str, message_id: str, expected: str) -> None:
    assert status_callback_url(configured, message_id) == expected


def test_a_callback_settles_an_unknown_row_through_the_id_in_its_url(
    engine: Engine, twilio_standin: TwilioStandin
) -> None:
    """The send's response was lost (row `unknown`, no MessageSid): Twilio's signed callback still finds it."""
    public, token, now = "https://hooks.example.com/winback", "callback-signing-token", dt.datetime.now(dt.UTC)
    configured = public + "/webhooks/twilio/status?src=twilio"  # a query of its own: the id is joined with &
    with engine.begin() as conn:
        add_unknown_sms_row(conn, "msg-0001", now)
    channel = TwilioChannel(twilio_standin.settings(status_callback_url=configured))
    sent = channel.send(sms())
    assert isinstance(sent, Sent)

    callback = twilio_standin.received[0].request.fields()["StatusCallback"]
    assert callback == configured + "&winback_message_id=msg-0001"
    params = {"AccountSid": DEFAULT_ACCOUNT_SID, "MessageSid": sent.provider_message_id, "MessageStatus": "sent"}
    server = TestClient(create_app(engine, ServerSettings(public_url=public, twilio_auth_token=token)))
    response = server.post(
        callback.removeprefix(public),  # the proxy strips /winback; the server rebuilds the public URL
        data=params,
        headers={"X-Twilio-Signature": RequestValidator(token).compute_signature(callback, params)},
    )

    assert response.status_code == 200, response.text
    assert response.json()["reconciled"] == 1
    with engine.connect() as conn:
        row = conn.execute(select(OutboxMessage.__table__).where(OutboxMessage.id == "msg-0001")).one()
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "twilio", sent.provider_message_id)


def add_unknown_sms_row(conn: Any, message_id: str, at: dt.datetime) -> None:
    """An SMS outbox row whose send crashed before the response was recorded: status unknown, no provider id."""
    run_id = insert_run(conn, "camp-42", at)
    conn.execute(
        insert(OutboxMessage).values(
            id=message_id, run_id=run_id, customer_id="c-1", step="winback", channel="sms", template="winback",
            to_address="+447700900123", context={}, status="unknown", provider=None, provider_message_id=None,
            attempts=1, not_before=at, created_at=at,
        )
    )  # fmt: skip


def test_a_1600_character_body_is_accepted(channel: TwilioChannel) -> None:
    assert isinstance(channel.send(sms(text="y" * 1600)), Sent)


def test_a_message_for_another_channel_is_a_programming_error(channel: TwilioChannel) -> None:
    with pytest.raises(ValueError, match="email"):
        channel.send(OutgoingMessage("m", "email", "a@example.com", "x"))


# -- refusals and outages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("+15005550001", "The 'To' number +1500*****01 is not a valid phone number."),
        ("07700900123", "The 'To' number 07700*****23 is not a valid phone number."),
    ],
)
def test_invalid_number_is_21211_not_retryable(channel: TwilioChannel, to: str, reason: str) -> None:
    assert channel.send(sms(to=to)) == Failed(reason, False, None, "21211")


def test_opted_out_recipient_is_a_distinct_reason(channel: TwilioChannel, twilio_standin: TwilioStandin) -> None:
    assert channel.send(sms(to="+15005550004")) == Failed(OPTED_OUT_REASON, False, None, "21610")
    twilio_standin.opt_out("+447700900999")
    assert channel.send(sms(to="+447700900999")) == Failed("recipient opted out", False, None, "21610")
    assert isinstance(channel.send(sms(to="+447700900998")), Sent)


def test_too_long_body_is_21617(channel: TwilioChannel) -> None:
    outcome = channel.send(sms(text="z" * 1601))
    assert outcome == Failed("The concatenated message body exceeds the 1600 character limit.", False, None, "21617")


def test_wrong_auth_token_is_20003(twilio_standin: TwilioStandin) -> None:
    channel = TwilioChannel(twilio_standin.settings(auth_token="0" * 32))
    assert channel.send(sms()) == Failed("Authenticate", False, None, "20003")


def test_rate_limit_is_retryable_with_the_retry_after_hint(
    channel: TwilioChannel, twilio_standin: TwilioStandin
) -> None:
    twilio_standin.fail_next(429, retry_after=3)

    assert channel.send(sms()) == Failed("Too Many Requests", True, 3.0, "20429")
    assert isinstance(channel.send(sms()), Sent)


@pytest.mark.parametrize(("status", "code"), [(500, "20500"), (503, "20503")])
def test_server_errors_are_retryable(
    channel: TwilioChannel, twilio_standin: TwilioStandin, status: int, code: str
) -> None:
    twilio_standin.fail_next(status)
    outcome = channel.send(sms())
    assert isinstance(outcome, Failed)
    assert (outcome.retryable, outcome.provider_code, outcome.retry_after) == (True, code, None)


def test_other_client_errors_carry_the_twilio_code(channel: TwilioChannel, twilio_standin: TwilioStandin) -> None:
    twilio_standin.fail_next(400, code=21408)
    outcome = channel.send(sms())
    assert isinstance(outcome, Failed)
    assert (outcome.retryable, outcome.provider_code) == (False, "21408")


def test_connection_refused_is_retryable() -> None:
    settings = TwilioSettings(
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        from_number=VALID_TEST_FROM,
        api_base_url=unused_local_url(),
    )
    outcome = TwilioChannel(settings).send(sms())
    assert outcome == Failed("cannot reach twilio: ConnectionError", True, None, None)


def test_dropped_connection_is_retryable(channel: TwilioChannel, twilio_standin: TwilioStandin) -> None:
    twilio_standin.disconnect_next()
    outcome = channel.send(sms())
    assert isinstance(outcome, Failed) and outcome.retryable
    assert isinstance(channel.send(sms()), Sent)


def test_retry_after_is_remembered_per_thread(twilio_standin: TwilioStandin) -> None:
    client = RedirectingTwilioHttpClient(twilio_standin.url)
    channel = TwilioChannel(twilio_standin.settings(), http_client=client)
    twilio_standin.fail_next(429, retry_after=9)
    seen: dict[str, Any] = {}

    def limited() -> None:
        seen["outcome"] = channel.send(sms())
        seen["headers"] = client.last_response_headers()

    worker = threading.Thread(target=limited)
    worker.start()
    worker.join()
    assert seen["outcome"].retry_after == 9.0 and seen["headers"]["Retry-After"] == "9"
    assert client.last_response_headers() is None  # this thread made no request


def test_21610_maps_to_recipient_opted_out() -> None:
    with pytest.raises(RecipientOptedOut) as caught, map_provider_errors("twilio"):
        raise TwilioRestException(400, "https://api.twilio.com/x", "Unable to create record: opted out", 21610)
    assert caught.value.to_failed() == Failed("recipient opted out", False, None, "21610")


def test_logs_never_hold_the_full_number(
    channel: TwilioChannel, twilio_standin: TwilioStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="winback.channels.twilio")
    channel.send(sms())
    channel.send(sms(to="+15005550001"))

    assert "+447700900123" not in caplog.text and "+15005550001" not in caplog.text
    assert "+4477*****23" in caplog.text and "+1500*****01" in caplog.text


def test_mask_phone() -> None:
    assert mask_phone("+447700900123") == "+4477*****23"
    assert mask_phone("+1 (500) 555-0001") == "+1500*****01"
    assert mask_phone("12345") == "***"


# -- the redirecting HTTP client -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:9/p/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://messaging.twilio.com/v1/Services?PageSize=5",
            "http://127.0.0.1:9/p/v1/Services?PageSize=5",
        ),
        ("https://api.dublin.ie1.twilio.com/2010-04-01/x", "http://127.0.0.1:9/p/2010-04-01/x"),
        ("https://example.com/twilio.com/x", "https://example.com/twilio.com/x"),
        ("https://nottwilio.com/x", "https://nottwilio.com/x"),
    ],
)
def test_every_twilio_domain_is_redirected(url: str, expected: str) -> None:
    assert RedirectingTwilioHttpClient("http://127.0.0.1:9/p/").rewrite(url) == expected


def test_the_real_api_is_not_rewritten() -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    assert RedirectingTwilioHttpClient("https://api.twilio.com").rewrite(url) == url
    assert RedirectingTwilioHttpClient(None).rewrite(url) == url


# -- settings --------------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    assert TwilioSettings.from_env({}) is None
    with pytest.raises(ValueError, match="both"):
        TwilioSettings.from_env({"TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID})
    with pytest.raises(ValueError, match="from_number or a messaging_service_sid"):
        TwilioSettings.from_env({"TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "t"})
    settings = TwilioSettings.from_env(
        {
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": "secret-token",
            "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
            "TWILIO_STATUS_CALLBACK_URL": CALLBACK,
        }
    )
    assert settings is not None
    assert (settings.api_base_url, settings.messaging_service_sid, settings.from_number) == (
        "https://api.twilio.com",
        SERVICE_SID,
        None,
    )
    assert settings.status_callback_url == CALLBACK
    assert "secret-token" not in repr(settings)


# -- the stand-in itself: raw requests -------------------------------------------------------------


@pytest.fixture(params=["jsonschema", "openapi-core"])
def any_standin(request: pytest.FixtureRequest) -> Iterator[TwilioStandin]:
    require_specs()
    with running_twilio_standin(validator=request.param) as standin:
        yield standin


def post(standin: TwilioStandin, form: dict[str, Any], auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        standin.url + MESSAGES_PATH,
        data=form,
        auth=auth or (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),
        timeout=5,
    )


VALID = {"To": "+447700900123", "From": VALID_TEST_FROM, "Body": "Hello"}

REJECTED: list[tuple[str, dict[str, Any], int, int]] = [
    ("no To", {"From": VALID_TEST_FROM, "Body": "Hi"}, 400, 21604),
    ("no From, no service", {"To": "+447700900123", "Body": "Hi"}, 400, 21603),
    ("no Body, media or content", {"To": "+447700900123", "From": VALID_TEST_FROM}, 400, 21602),
    ("Body over 1600", {**VALID, "Body": "b" * 1601}, 400, 21617),
    ("To not E.164", {**VALID, "To": "447700900123"}, 400, 21211),
    ("To magic invalid", {**VALID, "To": "+15005550001"}, 400, 21211),
    ("To opted out", {**VALID, "To": "+15005550004"}, 400, 21610),
    ("From magic invalid", {**VALID, "From": "+15005550001"}, 400, 21212),
    ("bad MessagingServiceSid", {**VALID, "MessagingServiceSid": "MG123"}, 400, 20001),
    ("StatusCallback not a URI", {**VALID, "StatusCallback": "not a url"}, 400, 21609),
    ("MediaUrl not a URI", {**VALID, "MediaUrl": ["https://a.example/x.png", "nope nope"]}, 400, 21620),
    ("MaxPrice not a number", {**VALID, "MaxPrice": "cheap"}, 400, 20001),
    ("ProvideFeedback not a boolean", {**VALID, "ProvideFeedback": "maybe"}, 400, 20001),
]


def test_the_valid_form_is_created(any_standin: TwilioStandin) -> None:
    response = post(any_standin, {**VALID, "MediaUrl": ["https://a.example/x.png"], "ProvideFeedback": "true"})
    assert response.status_code == 201
    assert response.json()["num_media"] == "1"


@pytest.mark.parametrize(("case", "form", "status", "code"), REJECTED, ids=[c[0] for c in REJECTED])
def test_the_standin_rejects_what_twilio_rejects(
    any_standin: TwilioStandin, case: str, form: dict[str, Any], status: int, code: int
) -> None:
    response = post(any_standin, form)

    assert (response.status_code, response.json()["code"]) == (status, code), case
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["status"] == status and body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


@pytest.mark.parametrize(
    "auth",
    [None, (DEFAULT_ACCOUNT_SID, "wrong-token"), ("AC" + "1" * 32, DEFAULT_AUTH_TOKEN)],
    ids=["no auth", "wrong token", "other account"],
)
def test_basic_auth_is_required(twilio_standin: TwilioStandin, auth: tuple[str, str] | None) -> None:
    headers = {} if auth is None else {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}
    response = httpx.post(twilio_standin.url + MESSAGES_PATH, data=VALID, headers=headers)
    assert (response.status_code, response.json()["code"], response.json()["message"]) == (
        401,
        20003,
        "Authenticate",
    )


def test_a_json_body_is_not_a_form(any_standin: TwilioStandin) -> None:
    response = httpx.post(any_standin.url + MESSAGES_PATH, json=VALID, auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN))
    assert response.status_code == 400


def test_unknown_routes_are_20404(twilio_standin: TwilioStandin) -> None:
    response = httpx.post(twilio_standin.url + "/2010-04-01/Accounts/AC1/Calls.json", data=VALID)
    assert (response.status_code, response.json()["code"]) == (404, 20404)


def test_both_validators_give_the_same_answers() -> None:
    require_specs()
    with (
        running_twilio_standin(validator="jsonschema") as fast,
        running_twilio_standin(validator="openapi-core") as reference,
    ):
        for _, form, _, _ in [("valid", VALID, 0, 0), *REJECTED]:
            a, b = post(fast, form), post(reference, form)
            assert (a.status_code, a.json()["code"] if a.status_code >= 400 else None) == (
                b.status_code,
                b.json()["code"] if b.status_code >= 400 else None,
            )
