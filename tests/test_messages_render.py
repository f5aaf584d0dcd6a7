"""Rendering: specific apologies, escaping, strict fields, localised money and dates, SMS, the sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from winback.messages.failure_words import WHAT_WENT_WRONG, what_went_wrong
from winback.messages.render import (
    ENV,
    SMS_OPT_OUT,
    Brand,
    GenericApologyError,
    RenderError,
    build_context,
    offer_words,
    render,
    safe_locale,
)

UNSUB = "https://example.test/unsubscribe/tok"
END_OF_2_DEC = dt.datetime(2026, 12, 3, 11, 59, 59, 999999, tzinfo=dt.UTC)  # a code valid through 2 Dec (offers.issue)


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "first_name": "Ada",
        "locale": "en_GB",
        "failure_category": "damaged_item",
        "order_id": "ORD-1001",
        "occurred_at": dt.datetime(2026, 10, 20, 14, 30, tzinfo=dt.UTC),
        "unresolved": True,
        "description": None,
        "code": "WB-ACDE-FGHJ-KMNP",
        "offer_kind": "store_credit",
        "offer_value": 15.0,
        "offer_amount": 15.0,
        "currency": "EUR",
        "expires_at": END_OF_2_DEC,
        "last_order_at": dt.datetime(2026, 6, 7, 11, 0, tzinfo=dt.UTC),
    }
    row.update(kw)
    return row


def _ctx(**kw: Any) -> dict[str, Any]:
    return build_context(_row(**kw), Brand(), UNSUB)


def _nbsp(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


# --------------------------------------------------------------------------- apologies


def test_apology_names_order_and_failure_everywhere() -> None:
    out = render("apology", "email", _ctx())
    assert out.subject == "Ada, we're sorry your order ORD-1001 arrived damaged"
    assert "your order ORD-1001 from 20 Oct 2026 arrived damaged." in out.text
    assert out.html is not None
    assert "your order <strong>ORD-1001</strong> from 20 Oct 2026 arrived damaged." in out.html
    assert "€15.00 store credit: use code WB-ACDE-FGHJ-KMNP by 2 Dec 2026" in out.text
    assert "Our team is on it now" in out.text
    assert "Our team is on it now" in out.html
    assert "Northwind Goods Ltd, 1 Harbour Street" in out.text
    assert f"Unsubscribe: {UNSUB}" in out.text
    assert f'<a clicktracking="off" href="{UNSUB}">Unsubscribe</a>' in out.html
    assert out.text.endswith("\n")


@pytest.mark.parametrize(
    ("category", "words"),
    [
        ("late_delivery", "arrived late"),
        ("wrong_item", "arrived with the wrong item"),
        ("billing_error", "was billed incorrectly"),
        ("rude_staff", "was handled rudely by our staff"),
        ("outage", "was disrupted by our service outage"),
    ],
    ids=["late", "wrong-item", "billing", "rude-staff", "outage"],
)
def test_apology_wording_per_category(category: str, words: str) -> None:
    out = render("apology", "email", _ctx(failure_category=category))
    assert out.subject == f"Ada, we're sorry your order ORD-1001 {words}"
    assert f"ORD-1001 from 20 Oct 2026 {words}." in out.text


def test_resolved_failure_says_so() -> None:
    out = render("apology", "email", _ctx(unresolved=False))
    assert "Our team has dealt with it." in out.text
    assert "Our team is on it now" not in out.text


def test_description_is_included() -> None:
    out = render("apology", "email", _ctx(description="the lid was cracked"))
    assert "arrived damaged. (the lid was cracked)" in out.text
    assert "<em>(the lid was cracked)</em>" in out.html


def test_apology_without_an_offer() -> None:
    out = render("apology", "email", _ctx(code=None))
    assert "As an apology" not in out.text
    assert "WB-" not in out.html


@pytest.mark.parametrize(
    "failure",
    [None, {}, {"what": "arrived damaged", "order_ref": ""}, {"what": "", "order_ref": "ORD-1"}],
    ids=["no-failure", "empty-failure", "no-order", "no-words"],
)
def test_apology_without_a_specific_failure_is_refused(failure: dict[str, Any] | None) -> None:
    ctx = _ctx()
    ctx["failure"] = failure
    with pytest.raises(GenericApologyError, match="refusing a generic apology"):
        render("apology", "email", ctx)
    with pytest.raises(GenericApologyError):
        render("apology", "sms", ctx)


def test_apology_row_without_a_failure_category_is_refused() -> None:
    ctx = _ctx(failure_category=None)
    assert ctx["failure"] is None
    with pytest.raises(GenericApologyError):
        render("apology", "email", ctx)


def test_generic_apology_error_is_a_render_error() -> None:
    assert issubclass(GenericApologyError, RenderError)
    assert issubclass(RenderError, ValueError)


# --------------------------------------------------------------------------- escaping and strictness


def test_html_escapes_merge_fields_text_does_not() -> None:
    name = "<script>alert(1)</script>"
    out = render("winback", "email", _ctx(first_name=name, failure_category=None))
    assert "<script>" not in out.html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in out.html
    assert f"Hi {name}," in out.text
    assert out.subject.startswith(name)


def test_html_escapes_the_failure_description() -> None:
    out = render("apology", "email", _ctx(description='<img src=x onerror="x()">'))
    assert "<img" not in out.html
    assert "&lt;img src=x onerror=&#34;x()&#34;&gt;" in out.html


def test_missing_first_name_becomes_there() -> None:
    out = render("winback", "email", _ctx(first_name=None, failure_category=None))
    assert out.text.startswith("Hi there,")


@pytest.mark.parametrize(
    ("template", "channel"),
    [("winback", "email"), ("winback", "sms"), ("apology", "email"), ("apology", "sms")],
    ids=["winback-email", "winback-sms", "apology-email", "apology-sms"],
)
def test_missing_field_fails_the_render(template: str, channel: str) -> None:
    ctx = _ctx()
    del ctx["brand"]
    with pytest.raises(RenderError, match=rf"template '{template}' \({channel}\): 'brand' is undefined"):
        render(template, channel, ctx)


def test_missing_nested_field_fails_the_render() -> None:
    ctx = _ctx()
    ctx["offer"] = {"code": "WB-ACDE-FGHJ-KMNP", "words": "€5.00 store credit"}  # no expires_on
    with pytest.raises(RenderError, match="expires_on"):
        render("winback", "email", ctx)


def test_unknown_template_name() -> None:
    with pytest.raises(RenderError, match=r"unknown template 'newsletter'; known: apology, winback"):
        render("newsletter", "email", _ctx())


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
    ],
    ids=["str-mro", "str-class", "globals", "subclasses"],
)
def test_sandbox_blocks_python_internals(source: str) -> None:
    with pytest.raises(SecurityError, match="unsafe"):
        ENV.from_string(source).render()


@pytest.mark.parametrize(
    "source",
    ["{{ d.__class__ }}", "{{ d.__init__.__globals__ }}", "{{ d.__class__.__mro__ }}"],
    ids=["class", "globals", "mro"],
)
def test_sandbox_blocks_internals_of_a_dict_field(source: str) -> None:
    """The dict fast path (fields read as keys first) leaves a dict's internals to the sandbox's checks."""
    with pytest.raises((SecurityError, UndefinedError)):
        ENV.from_string(source).render(d={"x": 2})


def test_dict_fields_read_as_the_plain_sandbox_reads_them() -> None:
    """Keys first for a dict, but a dict's own attributes (`items`) stay attributes, as Jinja has them."""
    plain = SandboxedEnvironment(undefined=StrictUndefined)
    fields = {"first_name": "Ada", "items": "a key", "keys": [1], "_note": "a key"}
    for source in ("{{ d.first_name }}", "{{ d['items'] }}", "{{ d.items()|list|length }}", "{{ d.keys is callable }}",
                   "{{ d.first_name.upper() }}", "{{ d.missing is defined }}", "{{ d._note }}"):  # fmt: skip
        assert ENV.from_string(source).render(d=fields) == plain.from_string(source).render(d=fields), source
    with pytest.raises(UndefinedError, match="missing"):
        ENV.from_string("{{ d.missing }}").render(d=fields)


def test_string_templates_are_not_autoescaped_but_files_are() -> None:
    assert ENV.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert ENV.get_template("winback/body.html.j2").environment.autoescape("winback/body.html.j2") is True
    assert ENV.autoescape("winback/body.txt.j2") is False


# --------------------------------------------------------------------------- SMS


@pytest.mark.parametrize("template", ["apology", "winback"], ids=["apology", "winback"])
def test_sms_ends_with_opt_out_and_has_no_subject_or_html(template: str) -> None:
    out = render(template, "sms", _ctx())
    assert SMS_OPT_OUT == "Reply STOP to opt out"
    assert out.text.endswith(" Reply STOP to opt out")
    assert out.subject is None
    assert out.html is None
    assert out.text.startswith("Northwind Goods: Ada,")


def test_apology_sms_names_the_order() -> None:
    out = render("apology", "sms", _ctx())
    assert out.text == (
        "Northwind Goods: Ada, sorry your order ORD-1001 arrived damaged. Please take €15.00 store credit: "
        "code WB-ACDE-FGHJ-KMNP until 2 Dec 2026. Reply STOP to opt out"
    )


# --------------------------------------------------------------------------- locale


@pytest.mark.parametrize(
    ("kind", "value", "amount", "currency", "locale", "expected"),
    [
        ("store_credit", 15.0, 0.0, "EUR", "de_DE", "15,00 € store credit"),
        ("store_credit", 15.0, 0.0, "USD", "en_US", "$15.00 store credit"),
        ("store_credit", 15.0, 0.0, "EUR", "en_GB", "€15.00 store credit"),
        ("store_credit", 1234.5, 0.0, "EUR", "de_DE", "1.234,50 € store credit"),
        ("percent_discount", 15.0, 0.0, "EUR", "en_US", "15% off your next order"),
        ("percent_discount", 15.0, 0.0, "EUR", "de_DE", "15 % off your next order"),
        ("refund_share", 20.0, 16.0, "GBP", "en_GB", "a refund of £16.00"),
        ("free_shipping", 0.0, 4.95, "EUR", "en_GB", "free shipping on your next order"),
        ("free_service", 10.0, 10.0, "EUR", "en_GB", "a free service visit"),
    ],
    ids=[
        "eur-de", "usd-us", "eur-gb", "eur-de-thousands", "pct-us", "pct-de", "refund-uses-amount",
        "free-shipping", "free-service",
    ],
)  # fmt: skip
def test_offer_words_localised(
    kind: str, value: float, amount: float, currency: str, locale: str, expected: str
) -> None:
    assert _nbsp(offer_words(kind, value, amount, currency, locale)) == expected


def test_offer_words_unknown_kind() -> None:
    with pytest.raises(RenderError, match="unknown offer kind 'voucher'"):
        offer_words("voucher", 1.0, 1.0, "EUR", "en_GB")


@pytest.mark.parametrize(
    ("locale", "currency", "language", "money", "occurred", "expires"),
    [
        ("de_DE", "EUR", "de", "15,00 € store credit", "20.10.2026", "02.12.2026"),
        ("en_US", "USD", "en", "$15.00 store credit", "Oct 20, 2026", "Dec 2, 2026"),
        ("en_GB", "GBP", "en", "£15.00 store credit", "20 Oct 2026", "2 Dec 2026"),
        ("tlh_XX", "EUR", "en", "€15.00 store credit", "20 Oct 2026", "2 Dec 2026"),
        (None, "EUR", "en", "€15.00 store credit", "20 Oct 2026", "2 Dec 2026"),
    ],
    ids=["de_DE", "en_US", "en_GB", "unknown-falls-back", "missing-falls-back"],
)
def test_rendered_money_and_dates_follow_the_locale(
    locale: str | None, currency: str, language: str, money: str, occurred: str, expires: str
) -> None:
    out = render("apology", "email", _ctx(locale=locale, currency=currency))
    text = _nbsp(out.text)
    assert f"ORD-1001 from {occurred} arrived damaged" in text
    assert f"here is {money}: use code WB-ACDE-FGHJ-KMNP by {expires}." in text
    assert f'<html lang="{language}">' in out.html


@pytest.mark.parametrize(
    "expires_at",
    [END_OF_2_DEC, END_OF_2_DEC.isoformat(), END_OF_2_DEC.replace(tzinfo=None), pd.Timestamp(END_OF_2_DEC)],
    ids=["aware", "iso-text", "naive-utc", "pandas"],
)
def test_the_expiry_date_is_the_day_the_code_is_valid_through(expires_at: Any) -> None:
    """(Was a bug: the UTC date was printed, 3 Dec here, a day on which the code is refused at noon UTC.)"""
    ctx = _ctx(expires_at=expires_at, locale="en_US")
    assert ctx["offer"]["expires_on"] == "Dec 2, 2026"
    assert "code WB-ACDE-FGHJ-KMNP until Dec 2, 2026." in _nbsp(render("apology", "sms", ctx).text)


def test_winback_names_the_last_order_date() -> None:
    out = render("winback", "email", _ctx(failure_category=None, locale="de_DE"))
    assert "since your last order on 07.06.2026" in out.text
    assert _nbsp(out.subject) == "Ada, we've missed you: 15,00 € store credit inside"


def test_date_accepts_pandas_timestamps_and_missing_values() -> None:
    ctx = _ctx(last_order_at=pd.Timestamp("2026-06-07 23:30", tz="UTC"), occurred_at=None)
    assert ctx["history"]["last_order_on"] == "7 Jun 2026"
    assert ctx["failure"]["occurred_on"] == ""
    assert _ctx(last_order_at=float("nan"))["history"]["last_order_on"] == ""


def test_date_treats_nat_as_missing() -> None:
    ctx = _ctx(last_order_at=pd.NaT)
    assert ctx["history"]["last_order_on"] == ""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("de_DE", "de_DE"),
        ("fr_FR", "fr_FR"),
        ("xx_YY", "en_GB"),
        ("klingon", "en_GB"),
        (None, "en_GB"),
        ("", "en_GB"),
    ],
    ids=["de", "fr", "unknown", "nonsense", "none", "empty"],
)
def test_safe_locale(given: str | None, expected: str) -> None:
    assert safe_locale(given) == expected


# --------------------------------------------------------------------------- failure words


def test_every_failure_category_has_specific_words() -> None:
    assert set(WHAT_WENT_WRONG) == {
        "late_delivery", "damaged_item", "wrong_item", "billing_error", "rude_staff", "outage",
    }  # fmt: skip
    for words in WHAT_WENT_WRONG.values():
        assert "inconvenience" not in words
    assert what_went_wrong("late_delivery") == "arrived late"


def test_unknown_failure_category_has_no_wording() -> None:
    with pytest.raises(ValueError, match="no apology wording for failure category 'lost_parcel'"):
        what_went_wrong("lost_parcel")
    with pytest.raises(ValueError, match="lost_parcel"):
        _ctx(failure_category="lost_parcel")


def test_sms_is_kept_within_two_segments_and_ends_with_the_opt_out() -> None:
    from winback.messages.render import SMS_OPT_OUT, Brand, build_context, render
    from winback.messages.sms_segments import count_segments

    long_name = "Maximilian-Alexander " * 12  # pushes the text well past two segments
    row = {"first_name": long_name.strip(), "locale": "en_GB", "failure_category": "late_delivery",
           "order_id": "O-1", "occurred_at": "2026-10-01T10:00:00+00:00", "unresolved": True}  # fmt: skip
    text = render("apology", "sms", build_context(row, Brand(), "http://x/u/t")).text
    assert text.endswith(SMS_OPT_OUT)
    assert count_segments(text) <= 2
    assert "..." in text  # shortened, visibly


@pytest.mark.parametrize("template", ["apology", "winback", "resolved", "follow_up"])
@pytest.mark.parametrize("locale", ["en_GB", "de_DE", "en_US"])
@pytest.mark.parametrize("code", ["WB-ACDE-FGHJ-KMNP", None])
def test_render_matches_jinjas_own_template_render(template: str, locale: str, code: str | None) -> None:
    """render() builds its Jinja contexts itself (for speed): the output must be Template.render's, byte for byte."""
    ctx = _ctx(locale=locale, code=code, first_name="Zoë <b>&", description="Box <crushed> & wet")
    email, sms = render(template, "email", ctx), render(template, "sms", ctx)
    subject = ENV.get_template(f"{template}/subject.txt.j2").render(ctx).strip()
    text = ENV.get_template(f"{template}/body.txt.j2").render(ctx).strip() + "\n"
    html = ENV.get_template(f"{template}/body.html.j2").render(ctx)
    assert (email.subject, email.text, email.html) == (subject, text, html)
    assert sms.text.startswith(ENV.get_template(f"{template}/sms.txt.j2").render(ctx).strip()[:40])


# --------------------------------------------------------------------------- the check before queueing


def _queued(customer: str, **kw: Any) -> dict[str, Any]:
    return {"customer_id": customer, "template": "apology", "channel": "email", "context": _row(**kw)}


def test_one_customers_bad_failure_row_does_not_stop_the_run() -> None:
    from winback.messages.compose import check_templates

    check_templates([_queued("C1", failure_category="lost_parcel"), _queued("C2"), _queued("C3", order_id=None)])


def test_a_pair_that_renders_for_nobody_stops_the_run_naming_who_was_tried() -> None:
    from winback.messages.compose import TEMPLATE_CHECK_ROWS, check_templates

    bad = [_queued(f"C{i}", failure_category="lost_parcel") for i in range(TEMPLATE_CHECK_ROWS + 5)]
    with pytest.raises(RenderError) as caught:
        check_templates([*bad, _queued("C-good")])  # the good row comes after the limit: not reached
    text = str(caught.value)
    assert f"'apology' (email) rendered for none of the {TEMPLATE_CHECK_ROWS} customers tried" in text
    assert f"C0, C1, C2, C3, C4 and {TEMPLATE_CHECK_ROWS - 5} more" in text and "lost_parcel" in text
