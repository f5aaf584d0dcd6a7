"""Hostile warehouse values, through the real path to the wire: plan_rows -> prepare -> real SDK -> stand-in.

What a customer's warehouse may hold in a name (or an order id, a description, a customer id): CR-LF and a
"Bcc:" header, 10,000 characters, control characters, a right-to-left override, HTML and Jinja. What arrives
at SendGrid and Twilio (the local stand-ins, driven by the official SDKs) must be one clean header line of
bounded length, an SMS within its segments, markup escaped in HTML and inert everywhere.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from standins import sendgrid_api, twilio_api
from standins.sendgrid_api import SendGridStandin
from standins.twilio_api import TwilioStandin

from winback.channels.outcomes import OutgoingMessage, Sent
from winback.channels.sendgrid import SendGridChannel
from winback.channels.sink import SinkChannel
from winback.channels.twilio import TwilioChannel
from winback.delivery.dispatch import prepare
from winback.messages.compose import plan_rows
from winback.messages.render import SMS_OPT_OUT, Brand
from winback.messages.safe_text import NAME_MAX_CHARS, SMS_MAX_CHARS, SUBJECT_MAX_CHARS
from winback.messages.sms_segments import count_segments
from winback.messages.unsubscribe import UnsubscribeLinks

sendgrid_standin = sendgrid_api.sendgrid_standin
twilio_standin = twilio_api.twilio_standin

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)  # noon in London: outside quiet hours
CONTROL_CODES = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029}
BIDI_CODES = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF}
MARKUP = "<script>alert(1)</script>{{ 7*7 }}{% if true %}x{% endif %}"
HOSTILE_NAMES = {
    "crlf-bcc": "Eve\r\nBcc: victim@example.com\r\nX-Injected: yes",
    "ten-thousand": "A" * 10_000,
    "ten-thousand-words": "Bartholomew " * 900,
    "controls": "Mal\x00lo\x1b[2Jry\x07\x08\x7f\x85\x9b",
    "rtl-override": "\u202eeve\u202c moc.elpmaxe@",
    "markup": MARKUP,
}


def _unsafe(text: str) -> set[str]:
    """The control and bidi-override characters in `text`, as escapes (empty when it is clean)."""
    return {f"U+{ord(ch):04X}" for ch in text if ord(ch) in CONTROL_CODES | BIDI_CODES}


def _people(channel: str) -> pd.DataFrame:
    """One customer per hostile name, each also with a hostile order id and description, and an offer."""
    rows = []
    for i, (label, name) in enumerate(HOSTILE_NAMES.items()):
        rows.append(
            {
                "customer_id": f"C-{i}-{label}",
                "segment": "aggrieved",
                "channel": channel,
                "email": f"c{i}@example.com",
                "phone": f"+4471234567{i:02d}",
                "locale": "en_GB",
                "time_zone": "Europe/London",
                "first_name": name,
                "code": "WB-ACDE-FGHJ-KMNP",
                "offer_kind": "store_credit",
                "offer_value": 15.0,
                "offer_amount": 15.0,
                "currency": "GBP",
                "expires_at": pd.Timestamp("2026-12-03 11:59", tz="UTC"),
                "last_order_at": pd.Timestamp("2026-06-07 11:00", tz="UTC"),
                "failure_category": "damaged_item",
                "order_id": "ORD-9\r\nBcc: order@example.com",
                "occurred_at": pd.Timestamp("2026-10-20 14:30", tz="UTC"),
                "unresolved": True,
                "description": f"box\r\ncrushed {MARKUP}",
            }
        )
    return pd.DataFrame(rows)


def _messages(channel: str) -> dict[str, OutgoingMessage]:
    """Each hostile customer's message as dispatch makes it, by label."""
    out = {}
    for row, label in zip(plan_rows(_people(channel), 7, NOW), HOSTILE_NAMES, strict=True):
        prepared = prepare(row, campaign_id="camp\r\nBcc: camp@example.com", brand=Brand(), links=UnsubscribeLinks())
        assert prepared.message is not None, f"{label}: {prepared.outcome}"
        out[label] = prepared.message
    return out


# --------------------------------------------------------------------------- SendGrid


@pytest.mark.parametrize("label", HOSTILE_NAMES)
def test_sendgrid_receives_one_clean_subject_line_and_escaped_html(
    label: str, sendgrid_standin: SendGridStandin
) -> None:
    settings = sendgrid_standin.settings(from_name="Winback\r\nBcc: sender@example.com\u202e")
    message = _messages("email")[label]
    outcome = SendGridChannel(settings).send(message)

    assert isinstance(outcome, Sent), outcome
    body = sendgrid_standin.accepted[0].json()
    subject = body["subject"]
    assert _unsafe(subject) == set(), subject
    assert len(subject) <= SUBJECT_MAX_CHARS
    assert body["from"] == {"email": "offers@winback.example", "name": "Winback Bcc: sender@example.com"}
    [personalization] = body["personalizations"]
    assert set(personalization) == {"to", "custom_args"}  # no bcc, cc or headers smuggled in
    assert personalization["to"] == [{"email": message.to}]
    for value in personalization["custom_args"].values():
        assert _unsafe(value) == set(), value
    assert personalization["custom_args"]["campaign_id"] == "camp Bcc: camp@example.com"
    assert set(body.get("headers", {})) <= {"List-Unsubscribe", "List-Unsubscribe-Post"}
    for value in body.get("headers", {}).values():
        assert _unsafe(value) == set(), value
    text, html = (part["value"] for part in body["content"])
    assert "ORD-9 Bcc: order@example.com" in subject  # the order id is one line too
    greeting = text.split("\n", 1)[0]
    assert greeting.startswith("Hi ") and len(greeting) <= len("Hi ,") + NAME_MAX_CHARS
    assert _unsafe(greeting) == set(), greeting
    assert "<script>" not in html and "49" not in text + html
    if label == "markup":
        assert subject.startswith(MARKUP)  # a subject is plain text: the markup is kept, as text, and inert
        assert f"Hi {MARKUP}," in text
        assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}{% if true %}x{% endif %}," in html
    if label.startswith("ten-thousand"):
        name = subject.split(", we're sorry", 1)[0]
        assert name.endswith("…") and len(name) <= NAME_MAX_CHARS


def test_a_message_built_elsewhere_is_cleaned_by_the_adapter_too(sendgrid_standin: SendGridStandin) -> None:
    message = OutgoingMessage(
        message_id="msg-1\r\nX-A: 1",
        channel="email",
        to="jane@example.com",
        subject="Hello\r\nBcc: victim@example.com " + "long " * 100,
        text="Hi.",
        customer_id="C1\nX-B: 2",
        unsubscribe_url="https://w.example/u/t\r\nBcc: x@example.com",
        categories=("winback\r\nX-C: 3",),
    )
    assert isinstance(SendGridChannel(sendgrid_standin.settings()).send(message), Sent)
    body = sendgrid_standin.accepted[0].json()
    assert body["subject"].startswith("Hello Bcc: victim@example.com long") and len(body["subject"]) <= 150
    assert body["personalizations"][0]["custom_args"] == {
        "winback_message_id": "msg-1 X-A: 1",
        "customer_id": "C1 X-B: 2",
    }
    assert body["categories"] == ["winback X-C: 3"]
    assert body["headers"]["List-Unsubscribe"] == "<https://w.example/u/t Bcc: x@example.com>"


# --------------------------------------------------------------------------- Twilio


@pytest.mark.parametrize("label", HOSTILE_NAMES)
def test_twilio_receives_a_clean_sms_within_two_segments(label: str, twilio_standin: TwilioStandin) -> None:
    message = _messages("sms")[label]
    outcome = TwilioChannel(twilio_standin.settings()).send(message)

    assert isinstance(outcome, Sent), outcome
    fields = twilio_standin.received[0].request.fields()
    sms = fields["Body"]
    assert _unsafe(sms) == set(), sms
    assert count_segments(sms) <= 2 and len(sms) <= SMS_MAX_CHARS and sms.endswith(SMS_OPT_OUT)
    assert "arrived damaged" in sms and "ORD-9 Bcc: order@example.com" in sms
    if label == "markup":
        assert sms.startswith(f"Northwind Goods: {MARKUP[:20]}")  # plain text, inert: not "49", not rendered
    assert "49" not in sms


def test_twilio_gets_a_body_built_elsewhere_without_its_controls(twilio_standin: TwilioStandin) -> None:
    """Lines stay lines (CR-LF becomes LF); escape, NUL and bidi characters go."""
    text = "Hi\r\nEve\x1b[2J\x00\u202eyes\u202c. " + SMS_OPT_OUT
    message = OutgoingMessage(message_id="m-1", channel="sms", to="+447123456700", text=text)
    assert isinstance(TwilioChannel(twilio_standin.settings()).send(message), Sent)
    assert twilio_standin.received[0].request.fields()["Body"] == "Hi\nEve [2J yes. " + SMS_OPT_OUT


# --------------------------------------------------------------------------- the local sink


def test_the_sink_records_what_a_provider_would_get(tmp_path: Path) -> None:
    sink = SinkChannel(tmp_path / "sink.jsonl")
    messages = [*_messages("email").values(), *_messages("sms").values()]
    for message in messages:
        assert isinstance(sink.send(message), Sent)
    records = [json.loads(line) for line in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert len(records) == len(messages)
    for record in records:
        assert _unsafe(record["campaign_id"]) == set()
        if record["channel"] == "email":
            assert _unsafe(record["subject"]) == set() and len(record["subject"]) <= SUBJECT_MAX_CHARS
        else:
            assert _unsafe(record["text"]) == set() and count_segments(record["text"]) <= 2
