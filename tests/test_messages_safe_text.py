"""Warehouse values made safe for headers and copy: one line, no controls, capped at a word boundary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from winback.messages.render import SMS_NAME_MAX_CHARS, Brand, build_context, offer_words, render
from winback.messages.safe_text import (
    NAME_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    header_value,
    one_line,
    shorten,
    subject_line,
    without_controls,
)
from winback.messages.sms_segments import count_segments, encoding_of, gsm_friendly

CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x20), 0x7F, 0x85, 0x9B, 0x2028, 0x2029))
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Ada\r\nBcc: victim@example.com", "Ada Bcc: victim@example.com"),
        ("Ada\nSubject: free money", "Ada Subject: free money"),
        ("Ada\rX-Header: 1", "Ada X-Header: 1"),
        ("A\x00d\x1b[31ma", "A d [31ma"),
        ("\u202eadA", "adA"),  # a right-to-left override: the name would read backwards, and what follows it too
        ("Ada\u2028Bcc: x", "Ada Bcc: x"),
        ("  Ada \t\t Lovelace  ", "Ada Lovelace"),
        ("10\u00a0%", "10\u00a0%"),  # babel's no-break spaces are text, not controls
        ("Zoë 李 <b>{{ 7*7 }}</b>", "Zoë 李 <b>{{ 7*7 }}</b>"),  # markup is left as data for the templates to escape
        (None, ""),
    ],
    ids=["crlf-bcc", "lf", "cr", "nul-esc", "rtl-override", "line-separator", "spaces", "nbsp", "markup", "none"],
)
def test_one_line(given: str | None, expected: str) -> None:
    assert one_line(given) == expected


def test_one_line_leaves_no_control_of_any_kind() -> None:
    cleaned = one_line(f"a{CONTROLS}b{BIDI}c")
    assert cleaned == "a b c" or cleaned == "a bc"
    assert not set(cleaned) & set(CONTROLS + BIDI)


def test_without_controls_keeps_lines_as_lf() -> None:
    assert without_controls("one\r\ntwo\rthree\nfour\x00\x1b\u202e!") == "one\ntwo\nthree\nfour !"


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("the quick brown fox jumps", 16, "the quick brown…"),
        ("the quick brown, fox jumps", 17, "the quick brown…"),  # no comma before the ellipsis
        ("x" * 10_000, 60, "x" * 59 + "…"),  # no word boundary: cut between characters
        ("a " + "y" * 100, 20, "a " + "y" * 17 + "…"),  # a boundary too early (under half the room) is not used
    ],
    ids=["fits", "fits-exactly", "word", "punctuation", "one-long-word", "early-boundary"],
)
def test_shorten(text: str, max_chars: int, expected: str) -> None:
    out = shorten(text, max_chars)
    assert out == expected
    assert len(out) <= max_chars


def test_shorten_with_a_gsm_ellipsis() -> None:
    assert shorten("the quick brown fox", 12, "...") == "the quick..."


def test_shorten_refuses_a_room_smaller_than_the_ellipsis() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        shorten("abc", 1)


def test_header_value_and_subject_line_cap() -> None:
    assert header_value("Ada\r\n" + "word " * 100, 40) == "Ada " + "word " * 6 + "word…"
    subject = subject_line("Sale\r\nBcc: x@example.com " + "deal " * 100)
    assert len(subject) <= SUBJECT_MAX_CHARS and subject.endswith("deal…") and "\n" not in subject


def test_gsm_friendly_replaces_look_alikes_only() -> None:
    assert (
        gsm_friendly("10\u00a0% · 15,00\u202f€ “quoted” O’Neill – … Zoë")
        == '10 % · 15,00 € "quoted" O\'Neill - ... Zoë'
    )
    assert encoding_of(gsm_friendly("15,00\u202f€ – “x” …")) == "GSM-7"


# --------------------------------------------------------------------------- in the rendered copy


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "first_name": "Ada",
        "locale": "en_GB",
        "failure_category": "damaged_item",
        "order_id": "ORD-1001",
        "occurred_at": dt.datetime(2026, 10, 20, 14, 30, tzinfo=dt.UTC),
        "unresolved": True,
        "code": "WB-ACDE-FGHJ-KMNP",
        "offer_kind": "store_credit",
        "offer_value": 15.0,
        "offer_amount": 15.0,
        "currency": "EUR",
        "expires_at": dt.datetime(2026, 12, 3, 11, 59, tzinfo=dt.UTC),
    }
    return row | kw


def _ctx(**kw: Any) -> dict[str, Any]:
    return build_context(_row(**kw), Brand(), "https://w.example/u/t")


def test_context_values_are_one_line_and_capped() -> None:
    ctx = _ctx(
        first_name="Ada\r\nBcc: victim@example.com\u202e " + "A" * 10_000,
        order_id="ORD-1\r\nX-Injected: 1",
        description="crushed\r\nbox " * 100,
    )
    name = ctx["customer"]["first_name"]
    assert name.startswith("Ada Bcc: victim@example.com") and len(name) <= NAME_MAX_CHARS and name.endswith("…")
    assert ctx["failure"]["order_ref"] == "ORD-1 X-Injected: 1"
    assert "\n" not in ctx["failure"]["description"] and ctx["failure"]["description"].endswith("box…")


@pytest.mark.parametrize("blank", [None, "", " \r\n\t", "\u202e", float("nan")], ids=repr)
def test_a_name_with_nothing_visible_is_there(blank: Any) -> None:
    assert _ctx(first_name=blank)["customer"]["first_name"] == "there"


@pytest.mark.parametrize("template", ["apology", "winback", "resolved", "follow_up"])
def test_a_ten_thousand_character_name_gives_a_capped_subject_and_a_two_segment_sms(template: str) -> None:
    ctx = _ctx(first_name="Bartholomew " * 900, failure_category=None if template == "winback" else "damaged_item")
    email, sms = render(template, "email", ctx), render(template, "sms", ctx)
    assert email.subject is not None and len(email.subject) <= SUBJECT_MAX_CHARS
    assert "\n" not in email.subject
    assert count_segments(sms.text) <= 2 and sms.text.endswith("Reply STOP to opt out")
    greeting = sms.text.split(": ", 1)[1].split(",", 1)[0]
    assert len(greeting) <= SMS_NAME_MAX_CHARS and greeting.endswith("...")  # GSM-7 kept: "..." not "…"
    assert "WB-ACDE-FGHJ-KMNP" in sms.text  # the short greeting leaves room for the code


def test_subject_is_capped_at_a_word_boundary_even_when_the_template_makes_it_long() -> None:
    ctx = _ctx(first_name="Ada", order_id="ORD " * 16)  # 64-character order ref, many words
    subject = render("apology", "email", ctx).subject
    assert subject is not None and len(subject) <= SUBJECT_MAX_CHARS


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12.5, "12.5% off your next order"), (33.3, "33.3% off your next order"), (0.5, "0.5% off your next order")],
)
def test_a_percentage_keeps_its_fraction(value: float, expected: str) -> None:
    """(Was a bug: 12.5 % was printed as 12 % and 0.5 % as 0 %.)"""
    assert offer_words("percent_discount", value, 0.0, "EUR", "en_GB") == expected


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NaT], ids=["none", "nan", "nat"])
def test_a_missing_order_id_or_description_is_empty_not_nan(missing: Any) -> None:
    failure = _ctx(order_id=missing, description=missing)["failure"]
    assert failure["order_ref"] == "" and failure["description"] == ""
