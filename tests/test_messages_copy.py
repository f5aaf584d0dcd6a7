"""Message copy as customers read it: every offer kind x channel x locale x template, rendered and read back.

Each message must read as written by a person: no phrase said twice in a row of thought ("10 % off your next
order for your next order"), the offer's amount formatted for the customer's locale, its code and last day
present, and the failure named wherever the template is about one.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
from typing import Any

import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_percent

from winback.messages.failure_words import WHAT_WENT_WRONG
from winback.messages.render import NAMES_THE_FAILURE, SMS_OPT_OUT, TEMPLATES, Brand, build_context, render
from winback.messages.sms_segments import count_segments

LOCALES = ("en_GB", "en_US", "de_DE", "fr_FR")  # the demo's customers' locales
CURRENCY = {"en_GB": "GBP", "en_US": "USD", "de_DE": "EUR", "fr_FR": "EUR"}
CHANNELS = ("email", "sms")
# kind -> (offer_value, offer_amount), as offers.issue stores them; amounts with cents and thousands on purpose
OFFERS: dict[str, tuple[float, float]] = {
    "percent_discount": (12.5, 0.0),
    "store_credit": (1234.5, 1234.5),
    "refund_share": (20.0, 16.4),
    "free_shipping": (0.0, 4.95),
    "free_service": (10.0, 10.0),
}
CODE = "WB-ACDE-FGHJ-KMNP"
LAST_DAY = dt.date(2026, 12, 2)
ORDER = "ORD-7731"
MIN_REPEAT_WORDS = 3


# --------------------------------------------------------------------------- the generic reader


def words_of(text: str) -> list[str]:
    """The words a reader sees: tags and entities of HTML undone, case folded, punctuation dropped."""
    visible = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return re.findall(r"[^\W_]+|[%€$£]", visible.casefold())


def repeated_phrases(text: str, min_words: int = MIN_REPEAT_WORDS) -> list[str]:
    """Every run of `min_words` or more words that occurs twice in `text`, longest first.

    Generic on purpose: it knows no template or offer wording, so it catches "for your next order for your
    next order" and any doubling a new template or offer phrase brings.
    """
    words = words_of(text)
    found: list[str] = []
    for size in range(min(len(words) // 2, 12), min_words - 1, -1):
        seen: set[tuple[str, ...]] = set()
        for start in range(len(words) - size + 1):
            run = tuple(words[start : start + size])
            if run in seen and not any(" ".join(run) in longer for longer in found):
                found.append(" ".join(run))
            seen.add(run)
    return found


def test_the_reader_finds_a_doubled_phrase_and_passes_clean_copy() -> None:
    assert repeated_phrases("Here is 10 % off your next order for your next order: use code X.") == ["your next order"]
    assert repeated_phrases("<p>Free shipping on <b>your next order</b> for your&nbsp;next order</p>") == [
        "your next order"
    ]
    assert repeated_phrases("Here is 10 % off your next order: use code X by 2 Dec 2026.") == []
    assert repeated_phrases("we're sorry, so sorry: your order, our order") == []  # two-word runs are allowed


# --------------------------------------------------------------------------- the matrix


def _row(kind: str, locale: str, template: str) -> dict[str, Any]:
    value, amount = OFFERS[kind]
    row: dict[str, Any] = {
        "first_name": "Ada",
        "locale": locale,
        "code": CODE,
        "offer_kind": kind,
        "offer_value": value,
        "offer_amount": amount,
        "currency": CURRENCY[locale],
        # valid through LAST_DAY in UTC-12 (offers.issue): noon UTC of the next day
        "expires_at": dt.datetime.combine(LAST_DAY + dt.timedelta(days=1), dt.time(11, 59, 59), dt.UTC),
        "last_order_at": dt.datetime(2026, 6, 7, 11, 0, tzinfo=dt.UTC),
    }
    if template in NAMES_THE_FAILURE:
        row |= {
            "failure_category": "late_delivery",
            "order_id": ORDER,
            "occurred_at": dt.datetime(2026, 10, 20, 14, 30, tzinfo=dt.UTC),
            "unresolved": template == "apology",
            "description": "Parcel arrived 2 days late",
        }
    return row


def _spaced(text: str) -> str:
    """No-break spaces (babel puts them in amounts) read as spaces; SMS sends them as plain spaces."""
    return re.sub(r"[\u00a0\u202f\u2009]", " ", text)


def _amount(kind: str, locale: str) -> str | None:
    """The amount as the customer's locale writes it (babel, independently of the renderer), if the kind has one."""
    value, amount = OFFERS[kind]
    if kind == "percent_discount":
        return format_percent(value / 100, locale=locale, decimal_quantization=False)
    if kind == "store_credit":
        return format_currency(value, CURRENCY[locale], locale=locale)
    if kind == "refund_share":
        return format_currency(amount, CURRENCY[locale], locale=locale)
    return None


def _parts(template: str, channel: str, ctx: dict[str, Any]) -> dict[str, str]:
    out = render(template, channel, ctx)
    if channel == "sms":
        return {"sms": out.text}
    assert out.subject is not None and out.html is not None
    return {"subject": out.subject, "text": out.text, "html": out.html}


MATRIX = list(itertools.product(OFFERS, CHANNELS, LOCALES, TEMPLATES))


@pytest.mark.parametrize(("kind", "channel", "locale", "template"), MATRIX, ids=["-".join(m) for m in MATRIX])
def test_copy_reads_right(kind: str, channel: str, locale: str, template: str) -> None:
    ctx = build_context(_row(kind, locale, template), Brand(), "https://winback.example/u/tok")
    parts = _parts(template, channel, ctx)
    amount = _amount(kind, locale)
    last_day = format_date(LAST_DAY, format="medium", locale=locale)
    for part, text in parts.items():
        assert repeated_phrases(text) == [], f"{part} repeats itself: {text!r}"
        readable = _spaced(html.unescape(text))
        words_only = re.sub(r"<[^>]+>", " ", readable)
        assert not re.search(r"[.!?)](?=[A-Z])", words_only), f"{part} runs two sentences together: {words_only!r}"
        if part == "subject":
            if template in NAMES_THE_FAILURE:
                assert ORDER in readable, f"the subject does not name the order: {readable!r}"
            continue
        assert CODE in readable, f"{part} has no code: {readable!r}"
        assert _spaced(last_day) in readable, f"{part} has no last day {last_day!r}: {readable!r}"
        if amount is not None:
            assert _spaced(amount) in readable, f"{part} does not show {amount!r}: {readable!r}"
        if template in NAMES_THE_FAILURE:
            assert ORDER in readable and WHAT_WENT_WRONG["late_delivery"] in readable, (
                f"{part} does not name the failure: {readable!r}"
            )
    if channel == "sms":
        assert parts["sms"].endswith(SMS_OPT_OUT)
        assert count_segments(parts["sms"]) <= 2
        assert "..." not in parts["sms"] and "…" not in parts["sms"], "an ordinary SMS was shortened"


@pytest.mark.parametrize("category", sorted(WHAT_WENT_WRONG))
@pytest.mark.parametrize("template", NAMES_THE_FAILURE)
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_failure_is_named_in_every_channel(category: str, template: str, channel: str) -> None:
    row = _row("free_shipping", "en_GB", template) | {"failure_category": category}
    for part, text in _parts(template, channel, build_context(row, Brand(), "https://w.example/u/t")).items():
        if part != "subject":
            assert WHAT_WENT_WRONG[category] in html.unescape(text), f"{part}: {text!r}"
        assert repeated_phrases(text) == [], f"{part} repeats itself: {text!r}"


# the default policy's pairs of failure and offer (offers/default_policy.yaml)
POLICY_PAIRS = [
    ("late_delivery", "free_shipping"),
    ("damaged_item", "store_credit"),
    ("billing_error", "refund_share"),
    ("outage", "free_service"),
    ("rude_staff", "percent_discount"),
]


@pytest.mark.parametrize("name", ["Raphaël", "Anaïs", "李小龍"])  # letters GSM-7 lacks: the SMS is UCS-2
@pytest.mark.parametrize(("category", "kind"), POLICY_PAIRS, ids=[f"{c}-{k}" for c, k in POLICY_PAIRS])
@pytest.mark.parametrize("template", ["apology", "resolved", "winback"])
def test_a_ucs2_sms_keeps_the_offer_and_its_code(name: str, category: str, kind: str, template: str) -> None:
    """(Was a bug: two UCS-2 parts hold 134 characters, and "Please take free…" reached the customer, no code.)"""
    row = _row(kind, "fr_FR", template) | {"first_name": name}
    if template in NAMES_THE_FAILURE:
        row["failure_category"] = category
    sms = render(template, "sms", build_context(row, Brand(), "https://w.example/u/t")).text
    assert CODE in sms and _spaced(format_date(LAST_DAY, format="medium", locale="fr_FR")) in sms, sms
    assert name in sms and sms.endswith(SMS_OPT_OUT)
    assert count_segments(sms) <= 3
