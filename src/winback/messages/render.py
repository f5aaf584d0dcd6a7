"""Render a message from the templates on disk, in the customer's locale, refusing generic apologies.

One sandboxed Jinja environment: templates are edited by marketers, so they must not reach Python
internals; StrictUndefined makes a missing merge field fail the render instead of sending a blank;
HTML templates (`*.html.j2`) are autoescaped, text and SMS templates are not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
from winback.messages.sms_segments import fit_sms
from winback.offers.issue import expiry_day

ENV = SandboxedEnvironment(
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


class RenderError(DataError):
    """A template could not produce a message fit to send; the message names the template and field."""


class GenericApologyError(RenderError):
    """An apology to an aggrieved customer that does not name what went wrong."""


@dataclass(frozen=True)
class Brand:
    name: str = "Northwind Goods"
    postal_address: str = "Northwind Goods Ltd, 1 Harbour Street, Bristol BS1 4ST, United Kingdom"


@dataclass(frozen=True)
class Rendered:
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
    """The offer as a customer reads it: '15 % off your next order', '€15.00 store credit', ...

    Cached: a campaign repeats a handful of (kind, value, locale) offers across many customers, and
    babel's formatting costs more than the rest of a message's context.
    """
    if kind == "percent_discount":
        return f"{format_percent(value / 100, locale=locale)} off your next order"
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
    """The template variables for one customer; `row` comes from the campaign's decision + offer join."""
    locale = safe_locale(row.get("locale"))
    ctx: dict[str, Any] = {
        "customer": {"first_name": row.get("first_name") or "there", "language": locale.split("_")[0]},
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
    if row.get("failure_category"):
        ctx["failure"] = {
            "what": what_went_wrong(row["failure_category"]),
            "order_ref": row.get("order_id") or "",
            "occurred_on": _date(row.get("occurred_at"), locale),
            "resolved": not bool(row.get("unresolved")),
            "description": row.get("description") or "",
        }
    return ctx


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

    An SMS is kept within `sms_max_segments` (GSM-7 or UCS-2 counted): the body is shortened at a word
    boundary if it must be, the opt-out wording always ends it.
    """
    if template not in TEMPLATES:
        raise RenderError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    if template in NAMES_THE_FAILURE:
        _require_specific_failure(context)
    try:
        if channel == "sms":
            body = _render_file(f"{template}/sms.txt.j2", context).strip()
            return Rendered(None, fit_sms(body, SMS_OPT_OUT, sms_max_segments, separator=" "), None)
        subject = _render_file(f"{template}/subject.txt.j2", context).strip()
        text = _render_file(f"{template}/body.txt.j2", context).strip() + "\n"
        html = _render_file(f"{template}/body.html.j2", context)
    except TemplateError as exc:
        raise RenderError(f"template {template!r} ({channel}): {exc}") from exc
    if template in NAMES_THE_FAILURE and context["failure"]["what"] not in text:
        raise GenericApologyError(f"template {template!r} rendered an apology that does not name the failure")
    return Rendered(subject, text, html)


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


def _require_specific_failure(context: dict[str, Any]) -> None:
    failure = context.get("failure")
    if not failure or not failure.get("what") or not failure.get("order_ref"):
        raise GenericApologyError(
            "refusing a generic apology: an aggrieved customer's message needs the failed order and what went wrong"
        )
