"""Render a message from the templates on disk, in the customer's locale, refusing generic apologies.

One sandboxed Jinja environment: templates are edited by marketers, so they must not reach Python
internals; StrictUndefined makes a missing merge field fail the render instead of sending a blank;
HTML templates (`*.html.j2`) are autoescaped, text and SMS templates are not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pandas as pd
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_percent
from jinja2 import PackageLoader, StrictUndefined, Template, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from winback.errors import DataError
from winback.messages.failure_words import what_went_wrong
from winback.messages.safe_text import (
    DESCRIPTION_MAX_CHARS,
    NAME_MAX_CHARS,
    ORDER_REF_MAX_CHARS,
    header_value,
    shorten,
    subject_line,
)
from winback.messages.sms_segments import encoding_of, fit_sms, gsm_friendly
from winback.warehouse.timeutil import expiry_day


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with a plain dict's keys read first: every merge field is one (`customer.first_name`).

    Jinja tries `getattr` before the key, so each field cost a raised AttributeError and then the sandbox's
    checks: about a third of a message's rendering (`bench/render_rate.py`: 21.2–29.0 µs a message before,
    15.0–18.2 µs after, the same output). A name a dict has as an attribute (`items`, `keys`) still takes the
    sandbox's own path, so what a template reads is the same either way.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))
ENV = _Sandbox(
    loader=PackageLoader("winback.messages", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates do not change under a running sender; no stat() per message
)
TEMPLATES = ("apology", "winback", "resolved", "follow_up")
NAMES_THE_FAILURE = ("apology", "resolved", "follow_up")
SMS_OPT_OUT = "Reply STOP to opt out"
SMS_NAME_MAX_CHARS = 24  # the greeting's name in an SMS: a long one would crowd out the order and the code
# A UCS-2 SMS (a name with a letter GSM-7 lacks: Raphaël, Anaïs, 李) holds 67 characters a part, not 153: one
# more part keeps an apology's offer and code, which two parts would cut ("Please take free…").
UCS2_EXTRA_SEGMENTS = 1
NO_NAME = "there"  # "Hi there," when the warehouse has no usable first name


class RenderError(DataError):
    """A template could not produce a message fit to send; the message names the template and field."""


class GenericApologyError(RenderError):
    """An apology to an aggrieved customer that does not name what went wrong."""


@dataclass(frozen=True)
class Brand:
    """Who the messages come from: the name they sign with and the postal address the law asks for."""

    name: str = "Northwind Goods"
    postal_address: str = "Northwind Goods Ltd, 1 Harbour Street, Bristol BS1 4ST, United Kingdom"


@dataclass(frozen=True)
class Rendered:
    """One rendered message: subject (email only), plain text, and HTML (email only)."""

    subject: str | None
    text: str
    html: str | None


@lru_cache(maxsize=256)
def safe_locale(locale: str | None) -> str:
    """A locale babel knows; unknown or missing ones fall back to en_GB rather than failing a batch."""
    try:
        return str(Locale.parse(locale or "en_GB"))
    except (UnknownLocaleError, ValueError, TypeError):
        return "en_GB"


@lru_cache(maxsize=4096)
def offer_words(kind: str, value: float, amount: float, currency: str, locale: str) -> str:
    """The offer as a complete phrase: '15 % off your next order', '€15.00 store credit', ...

    This phrase is the one owner of the offer's wording, "your next order" included: templates use it as a
    noun phrase ("Here is {{ offer.words }}: use code ...") and add nothing about what it applies to, or a
    customer reads "10 % off your next order for your next order".

    A percentage keeps its fraction (12.5 % is not rounded to 12 %), written as the locale writes numbers.
    Cached: a campaign repeats a handful of (kind, value, locale) offers across many customers, and
    babel's formatting costs more than the rest of a message's context.
    """
    if kind == "percent_discount":
        share = Decimal(str(value)) / 100  # via str: 33.3 / 100 in floats is 0.33299999999999996
        return f"{format_percent(share, locale=locale, decimal_quantization=False)} off your next order"
    if kind == "store_credit":
        return f"{format_currency(value, currency, locale=locale)} store credit"
    if kind == "refund_share":
        return f"a refund of {format_currency(amount, currency, locale=locale)}"
    if kind == "free_shipping":
        return "free shipping on your next order"
    if kind == "free_service":
        return "a free service visit"
    raise RenderError(f"unknown offer kind {kind!r}")


def build_context(row: dict[str, Any], brand: Brand, unsubscribe_url: str) -> dict[str, Any]:
    """The template variables for one customer; `row` comes from the campaign's decision + offer join.

    Values from the warehouse that copy quotes (name, order id, description) arrive as one line of visible
    text, capped at a word boundary (`messages.safe_text`): a CR-LF in a name must not reach a subject.
    """
    locale = safe_locale(row.get("locale"))
    ctx: dict[str, Any] = {
        "customer": {"first_name": customer_name(row.get("first_name")), "language": locale.split("_")[0]},
        "brand": {"name": brand.name, "postal_address": brand.postal_address},
        "unsubscribe_url": unsubscribe_url,
        "offer": None,
        "failure": None,
        "history": {"last_order_on": _date(row.get("last_order_at"), locale)},
    }
    if row.get("code"):
        ctx["offer"] = {
            "code": row["code"],
            "words": offer_words(
                row["offer_kind"],
                float(row["offer_value"]),
                float(row.get("offer_amount") or 0),
                row["currency"],
                locale,
            ),
            "expires_on": _expiry_date(row["expires_at"], locale),
        }
    if row.get("subject_template"):  # a variant's subject, in place of the template's subject file
        ctx["subject_template"] = str(row["subject_template"])
    if row.get("failure_category"):
        ctx["failure"] = {
            "what": what_went_wrong(row["failure_category"]),
            "order_ref": header_value(_present(row.get("order_id")), ORDER_REF_MAX_CHARS),
            "occurred_on": _date(row.get("occurred_at"), locale),
            "resolved": not bool(row.get("unresolved")),
            "description": header_value(_present(row.get("description")), DESCRIPTION_MAX_CHARS),
        }
    return ctx


def customer_name(value: Any) -> str:
    """A first name as copy quotes it: one line, at most NAME_MAX_CHARS characters, "there" when empty."""
    return header_value(_present(value), NAME_MAX_CHARS) or NO_NAME


def _present(value: Any) -> Any:
    """`value`, or "" when it is missing (None, NaN, NaT): a missing field must not print as "nan"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return value


def _date(value: Any, locale: str) -> str:
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) or hasattr(value, "date"):
        value = value.date()
    return _medium_date(value, locale)


def _expiry_date(value: Any, locale: str) -> str:
    """A code's last day as offers.issue counts it (its date in UTC-12), not its UTC date.

    A code is valid to the end of that day in UTC-12, so the date printed is honoured wherever the customer
    is. Its UTC date is the next day, from whose noon (UTC) the code is refused.
    """
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return _medium_date(expiry_day(value), locale)


@lru_cache(maxsize=65536)
def _medium_date(day: dt.date, locale: str) -> str:
    """Cached per (day, locale): a campaign's dates fall on a few thousand days at most."""
    return format_date(day, format="medium", locale=locale)


def render(template: str, channel: str, context: dict[str, Any], sms_max_segments: int = 2) -> Rendered:
    """Render `template` for `channel` (email: subject + text + HTML; sms: text with opt-out wording).

    A subject is one line of at most SUBJECT_MAX_CHARS characters, shortened at a word boundary. An SMS
    greets by a name of at most SMS_NAME_MAX_CHARS, is written in GSM-7 where a plain equivalent exists
    (babel's no-break spaces would otherwise switch it to UCS-2 and halve its room), and is kept within
    `sms_max_segments` (plus UCS2_EXTRA_SEGMENTS when it must be UCS-2): the body is shortened at a word
    boundary if it must be, the opt-out wording always ends it. A template about a failure must name it
    (its words) in the text a customer reads: the email's text part, the SMS.
    """
    if template not in TEMPLATES:
        raise RenderError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    if template in NAMES_THE_FAILURE:
        _require_specific_failure(context)
    try:
        if channel == "sms":
            body = gsm_friendly(_render_file(f"{template}/sms.txt.j2", _for_sms(context)).strip())
            _require_failure_named(template, context, body, "sms")
            segments = sms_max_segments + (UCS2_EXTRA_SEGMENTS if encoding_of(body) == "UCS-2" else 0)
            return Rendered(None, fit_sms(body, SMS_OPT_OUT, segments, separator=" "), None)
        own_subject = context.get("subject_template")
        subject_text = (
            _render_text(own_subject, context) if own_subject else _render_file(f"{template}/subject.txt.j2", context)
        )
        subject = subject_line(subject_text)
        text = _render_file(f"{template}/body.txt.j2", context).strip() + "\n"
        html = _render_file(f"{template}/body.html.j2", context)
    except TemplateError as exc:
        raise RenderError(f"template {template!r} ({channel}): {exc}") from exc
    _require_failure_named(template, context, text, "email")
    return Rendered(subject, text, html)


def _for_sms(context: dict[str, Any]) -> dict[str, Any]:
    """The context with the greeting's name shortened for an SMS (the same context when it is short)."""
    customer = context.get("customer")
    name = customer.get("first_name") if isinstance(customer, dict) else None
    if not isinstance(name, str) or len(name) <= SMS_NAME_MAX_CHARS:
        return context
    return {**context, "customer": {**customer, "first_name": shorten(name, SMS_NAME_MAX_CHARS, "...")}}


def _require_failure_named(template: str, context: dict[str, Any], text: str, channel: str) -> None:
    if template in NAMES_THE_FAILURE and context["failure"]["what"] not in text:
        raise GenericApologyError(
            f"template {template!r} ({channel}) rendered an apology that does not name the failure"
        )


@lru_cache(maxsize=64)
def _loaded(name: str) -> tuple[Template, dict[str, Any]]:
    """A template and its globals as a plain dict, loaded once (templates do not change under a sender)."""
    template = ENV.get_template(name)
    return template, dict(template.globals)


def _render_file(name: str, variables: dict[str, Any]) -> str:
    """`Template.render(variables)`, less its per-call cost.

    Template.render merges the globals (a ChainMap) into every new context, which was a third of a
    message's rendering; here they are merged from a dict made once. Same context, same output.
    """
    template, template_globals = _loaded(name)
    context = ENV.context_class(
        ENV, {**template_globals, **variables}, template.name, template.blocks, globals=template_globals
    )
    try:
        return ENV.concat(template.root_render_func(context))  # type: ignore[attr-defined]
    except Exception:
        return ENV.handle_exception()


@lru_cache(maxsize=64)
def _compiled(text: str) -> Template:
    """A campaign variant's subject, compiled once in the same sandbox as the template files."""
    return ENV.from_string(text)


def _render_text(text: str, variables: dict[str, Any]) -> str:
    return _compiled(text).render(variables)


def _require_specific_failure(context: dict[str, Any]) -> None:
    failure = context.get("failure")
    if not failure or not failure.get("what") or not failure.get("order_ref"):
        raise GenericApologyError(
            "refusing a generic apology: an aggrieved customer's message needs the failed order and what went wrong"
        )
