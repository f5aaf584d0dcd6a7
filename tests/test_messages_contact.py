"""Contact data, quiet hours, channel choice and signed unsubscribe links."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import random
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import idna
import pandas as pd
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from pydantic import SecretStr

import winback.messages.contact_data as contact_data
from winback.messages.channel_choice import choose_channels
from winback.messages.contact_data import (
    locale_region,
    normalise_email,
    normalise_phone,
    phone_time_zone,
    recipient_time_zone,
    sms_phone_problem,
)
from winback.messages.quiet_hours import next_allowed
from winback.messages.unsubscribe import DEV_SECRET, UnsubscribeLinks
from winback.settings import Settings

UTC = dt.UTC

# --------------------------------------------------------------------------- email addresses


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  ada@example.com  ", "ada@example.com"),
        ("Ada.Lovelace@Example.COM", "Ada.Lovelace@example.com"),
        ("ada+shop@example.co.uk", "ada+shop@example.co.uk"),
    ],
    ids=["plain", "surrounding-space", "domain-lower-cased", "plus-tag"],
)
def test_valid_emails_are_normalised(given: str, expected: str) -> None:
    assert normalise_email(given) == (expected, None)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (None, "missing email address"),
        ("", "missing email address"),
        ("   ", "missing email address"),
        ("not-an-email", "invalid email address: "),
        ("ada@", "invalid email address: "),
        ("ada@example", "invalid email address: "),
        ("ada@@example.com", "invalid email address: "),
        ("ada lovelace@example.com", "invalid email address: "),
    ],
    ids=["none", "empty", "blank", "no-at", "no-domain", "no-tld", "double-at", "space-in-local"],
)
def test_bad_emails_give_a_reason_not_an_exception(given: str | None, reason: str) -> None:
    address, problem = normalise_email(given)
    assert address is None
    assert problem is not None
    assert problem.startswith(reason)
    if reason.endswith(": "):
        assert len(problem) > len(reason)


def _reference_email(address: str | None) -> tuple[str | None, str | None]:
    """normalise_email as it was before the fast path: validate_email on every address."""
    if not address or not address.strip():
        return None, "missing email address"
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"
    return result.normalized, None


_CJK_LABEL = "中" * 50  # 50 characters, 150 UTF-8 bytes, "xn--fiqaaa…" (56 characters) in IDNA ASCII
_PUNY_CJK = idna.encode(f"{_CJK_LABEL}.{_CJK_LABEL}.com").decode()
_LONG_DOMAIN = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57]) + ".com"  # 253 characters
# Valid domains, each longest in a different one of the forms validate_email_length measures in UTF-8 bytes:
# as given (CJK: 191 bytes in 67 characters; fullwidth: 190 bytes that normalise to 66 ASCII characters),
# after decoding Punycode (79 characters given, 191 bytes decoded), in IDNA ASCII (198 characters, 174 bytes given)
_BOUNDARY_DOMAINS = [
    "中" * 50 + "." + "中" * 12 + ".com",
    "ｅ" * 62 + ".com",
    idna.encode("中" * 50 + "." + "中" * 12 + ".com").decode(),
    ".".join(["a" * 40 + "ü"] * 4) + ".de",
]

EMAIL_CORPUS: list[str | bytes | None] = [
    # demo-data shapes (app/demo_data/contacts.py `_emails`) and their broken forms
    "ada.lovelace.1@example.com", "juergen.mueller.123456@example.com", "ada.lovelace.1example.com",
    "ada lovelace.1@example.com", "ada.lovelace.1@example", ".lovelace.1@example.com", "ada..1@example.com",
    # missing, blank, surrounding whitespace
    None, "", " ", "\t\n", "  ada@example.com  ", "\tada@example.com\n", "\u3000ada@example.com\u3000",
    "ada@example.com\u200b",
    # case: domains fold, local parts do not, RFC 2142 mailbox names do
    "Foo@EXAMPLE.COM", "FOO@Example.Com", "Postmaster@Example.com", "POSTMASTER@example.com", "info@example.com",
    "Info.Desk@example.com", "Sales@example.com", "www@example.com", "WWW@example.com", "abuse+x@example.com",
    # RFC 5322 atext and dots
    "a!#$%&'*+/=?^_`{|}~-b@example.com", "a.b.c@example.com", ".a@example.com", "a.@example.com",
    "a..b@example.com", "a b@example.com", "a(b)@example.com", "a,b@example.com", "a;b@example.com",
    "a[b]@example.com", "a\\b@example.com", "a:b@example.com", "a<b@example.com", "a>b@example.com",
    "a\nb@example.com", "a\tb@example.com", "a\x00b@example.com",
    # quoted local parts and display names
    '"ada"@example.com', '"ada lovelace"@example.com', '"a@b"@example.com', '"a\\"b"@example.com', '"a..b"@example.com',
    '""@example.com', "Ada <ada@example.com>", "<ada@example.com>", '"Ada L" <ada@example.com>',
    # unicode local parts, NFC and unsafe characters
    "jürgen@example.com", "ju\u0308rgen@example.com", "用户@example.com", "\u0301a@example.com", "a\u200bb@example.com",
    "a\u00a0b@example.com", "ä.ö@bücher.de", "ΑΒΓ@example.com",
    # IDN domains
    "user@bücher.de", "user@xn--bcher-kva.de", "user@BÜCHER.DE", "user@bu\u0308cher.de", "user@xn--bcher-kva.DE",
    "user@xn--bcher.de", "user@xn--.de", "user@例え.jp", "user@例え。jp", "user@example．com",
    "user@ｅｘａｍｐｌｅ.com",
    "user@ex\u0301ample.com", "user@xn--4dbc.1.com", "user@1.xn--4dbc.com", "user@⒈.com", "user@a\u200db.com",
    # special-use, numeric TLDs, dotless, domain literals
    "a@localhost", "a@foo.test", "a@x.invalid", "a@foo.local", "a@foo.onion", "a@in-addr.arpa", "a@example.org",
    "a@foo.123", "a@123.com", "a@1.2.3.4", "a@[1.2.3.4]", "a@[IPv6:::1]", "a@com", "a@example.c0m", "a@example.co1",
    # hyphens and dots in labels
    "a@-example.com", "a@example-.com", "a@ex-ample.com", "a@ex--ample.com", "a@ab--cd.com", "a@xn--ab.com",
    "a@example.com.", "a@.example.com", "a@example..com", "a@example.-com", "a@exa_mple.com", "a@exa mple.com",
    "a@", "@example.com", "a@@example.com", "a@b@example.com", "@", "a＠example.com", "a﹫example.com",
    # local-part lengths: 64 is the RFC limit, but email_validator only enforces it in strict mode
    "a" * 64 + "@example.com", "a" * 65 + "@example.com", "a" * 200 + "@example.com",
    "b" * 64 + "@" + "c" * 185 + ".com", "b" * 64 + "@" + "c" * 186 + ".com",  # total 254 and 255, but labels > 63
    # total length near 254: local + "@" + domain with 63-character labels
    "x" * 64 + "@" + ".".join(["a" * 63, "b" * 63, "c" * 57]) + ".com",
    "x" * 64 + "@" + ".".join(["a" * 63, "b" * 63, "c" * 58]) + ".com",
    "x" * 11 + "@" + ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 50]) + ".com",
    "x" * 12 + "@" + ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 50]) + ".com",
    "x@" + _LONG_DOMAIN, "x@" + _LONG_DOMAIN[1:], "x@a" + _LONG_DOMAIN,  # 255, 254, 256 (254-char domain)
    "x@" + "a" * 63 + ".com", "x@" + "a" * 64 + ".com",  # label length limit
    # short in characters, too long in UTF-8 bytes or after the Punycode domain is decoded
    f"a@{_CJK_LABEL}.com", f"a@{_CJK_LABEL}.{_CJK_LABEL}.com", f"{'x' * 30}@{_CJK_LABEL}.com",
    f"{'x' * 60}@{_CJK_LABEL}.com", "x" * 60 + "@" + _PUNY_CJK, "x" + "@" + _PUNY_CJK,
    *[f"{'x' * k}@{domain}" for domain in _BOUNDARY_DOMAINS for k in range(40, 70)],  # valid up to 254 bytes
    # non-strings the old path accepted
    b"ada@Example.com", b"ada@example", b" ada@EXAMPLE.com ",
]  # fmt: skip


def _random_emails(seed: int, n: int) -> list[str]:
    """Seeded addresses: half free-form noise, half address-shaped (atext, dots, quotes, unicode, odd domains)."""
    rng = random.Random(seed)
    noise = 'aZz09.@@" -_+!<>[]()\\,;:~ \t\u00e4\u00fc\u00df\u4e2d\u0301\u200b\u3002\uff20\u00a0'
    atext = "abcxyzABCXYZ0189!#$%&'*+/=?^_`{|}~-."
    odd = '.. "@\u00fc\u4e2d\u0301'
    domains = [
        "example.com", "EXAMPLE.COM", "Example.Co.Uk", "b\u00fccher.de", "xn--bcher-kva.de", "example", "localhost",
        "foo.test", "x.invalid", "foo.123", "ex-ample.com", "-ex.com", "ex-.com", "ab--cd.com", "mail.example.org",
        "a" * 63 + ".com", "a" * 64 + ".com", "\u4e2d" * 50 + ".com", "", "example.com.", "exa mple.com",
    ]  # fmt: skip
    out = []
    for _ in range(n // 2):
        out.append("".join(rng.choice(noise) for _ in range(rng.randint(0, 30))))
    for _ in range(n - n // 2):
        k = rng.choice([0, 1, 5, 10, 30, 63, 64, 65, 70])
        local = "".join(rng.choice(atext if rng.random() < 0.97 else odd) for _ in range(max(k, rng.randint(1, 12))))
        if rng.random() < 0.05:
            local = f'"{local}"'
        if rng.random() < 0.05:
            local = rng.choice(["Postmaster", "INFO", "Sales", "noc"])
        domain = rng.choice(domains)
        if rng.random() < 0.2:
            domain = "".join(c.upper() if rng.random() < 0.5 else c for c in domain)
        if rng.random() < 0.05:
            domain = "a" * rng.randint(100, 190) + "." + domain
        pad = rng.choice(["", "", "", " ", "\t", "\n"])
        out.append(f"{pad}{local}@{domain}{pad}")
    return out


def _email_mismatches(addresses: list) -> list[tuple]:
    """(address, normalise_email's answer, the reference answer) wherever the two differ."""
    return [(a, got, want) for a in addresses if (got := normalise_email(a)) != (want := _reference_email(a))]


def test_normalise_email_matches_validate_email_on_the_corpus() -> None:
    contact_data._checked_domain.cache_clear()
    assert _email_mismatches(EMAIL_CORPUS) == []
    assert _email_mismatches(EMAIL_CORPUS) == []  # and again with every domain already cached
    fast = [a for a in EMAIL_CORPUS if isinstance(a, str) and contact_data._fast_normalise(a.strip()) is not None]
    assert len(fast) >= 80  # the fast path really was exercised, not just the fallback


def test_normalise_email_matches_validate_email_on_random_addresses() -> None:
    addresses = _random_emails(seed=20260601, n=4000)
    assert _email_mismatches(addresses) == []
    valid = sum(_reference_email(a)[0] is not None for a in addresses)
    fast = sum(contact_data._fast_normalise(a.strip()) is not None for a in addresses)
    assert valid >= 450  # seeded: 497 valid, 323 of them on the fast path
    assert fast >= 300


def test_each_domain_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting_validate_email(address: str, **kwargs: object) -> object:
        calls.append(address)
        return validate_email(address, **kwargs)

    monkeypatch.setattr(contact_data, "validate_email", counting_validate_email)
    contact_data._checked_domain.cache_clear()
    good = [f"first.last.{n}@example.com" for n in range(1000)]
    assert [normalise_email(a) for a in good] == [(a, None) for a in good]
    assert calls == ["a@example.com"]
    # an invalid domain is remembered as invalid, and each address then takes the full path for its own error text
    calls.clear()
    bad = [f"first.last.{n}@example" for n in range(10)]
    assert all(normalise_email(a)[1] == _reference_email(a)[1] for a in bad)
    assert calls == ["a@example", *bad]
    assert contact_data._checked_domain.cache_info().currsize == 2


# --------------------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("given", "region", "expected"),
    [
        ("07911 123456", "GB", "+447911123456"),
        ("07911123456", "GB", "+447911123456"),
        ("+44 7911 123456", None, "+447911123456"),
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0151 123 4567", "GB", "+441511234567"),
        ("(212) 555-0123", "US", "+12125550123"),
        ("0171 1234567", "DE", "+491711234567"),
        ("+44 7911 123456", "US", "+447911123456"),
    ],
    ids=[
        "uk-mobile-spaces", "uk-mobile", "uk-mobile-intl", "london-intl", "london-national", "liverpool",
        "us", "de-mobile", "intl-overrides-region",
    ],
)  # fmt: skip
def test_phone_numbers_to_e164(given: str, region: str | None, expected: str) -> None:
    assert normalise_phone(given, region) == (expected, None)


@pytest.mark.parametrize(
    ("given", "region", "reason"),
    [
        (None, "GB", "missing phone number"),
        ("", "GB", "missing phone number"),
        ("  ", "GB", "missing phone number"),
        ("07911 123456", None, "invalid phone number: "),
        ("call me maybe", "GB", "invalid phone number: "),
        ("12345", "GB", "invalid phone number: not a valid number for its region"),
        ("07700 900123", "GB", "invalid phone number: not a valid number for its region"),
        ("+44 7911 12345678", None, "invalid phone number: "),
    ],
    ids=[
        "none",
        "empty",
        "blank",
        "national-without-region",
        "words",
        "too-short",
        "reserved-drama-range",
        "too-long",
    ],
)
def test_bad_phone_numbers_give_a_reason_not_an_exception(given: str | None, region: str | None, reason: str) -> None:
    number, problem = normalise_phone(given, region)
    assert number is None
    assert problem is not None
    assert problem.startswith(reason)


@pytest.mark.parametrize(
    ("e164", "zone"),
    [
        ("+442079460958", "Europe/London"),
        ("+491711234567", "Europe/Berlin"),
        ("+33142685300", "Europe/Paris"),
        ("+12125550123", "America/New_York"),
        ("not a number", None),
    ],
    ids=["london", "germany", "paris", "new-york", "garbage"],
)
def test_phone_time_zone(e164: str, zone: str | None) -> None:
    assert phone_time_zone(e164) == zone


def test_a_national_number_is_read_in_its_region() -> None:
    """(Was: parsed with no region, "(415) 555-0100" had no zone, so a San Francisco SMS went at 01:00.)"""
    assert phone_time_zone("(415) 555-0100") is None
    assert phone_time_zone("(415) 555-0100", "US") == "America/Los_Angeles"
    assert phone_time_zone("+14155550100", "GB") == "America/Los_Angeles"  # the + form needs no region
    assert phone_time_zone(None, "US") is None


def test_phone_checks_compile_each_pattern_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A number's check reuses the patterns an earlier check compiled (phonenumbers' pattern cache is on)."""
    assert normalise_phone("+4915107023778") == ("+4915107023778", None)  # a German mobile's patterns compiled
    assert sms_phone_problem("+4915107023779", None) is None

    def compiled_again(*_args: object) -> None:
        raise AssertionError("phonenumbers compiled a pattern again")

    monkeypatch.setattr(phonenumbers.re_util, "re", SimpleNamespace(compile=compiled_again))
    assert normalise_phone("+49 151 07023780") == ("+4915107023780", None)
    assert sms_phone_problem("+4915107023781", None) is None
    assert sms_phone_problem("+49 30 1234567", None) == "not a mobile number (fixed line)"


@pytest.mark.parametrize(
    ("locale", "region"),
    [("en_US", "US"), ("de_DE", "DE"), ("en_us", "US"), ("zh_Hant_TW", "TW"), ("en", None), ("", None), (None, None)],
)
def test_locale_region(locale: str | None, region: str | None) -> None:
    assert locale_region(locale) == region


@pytest.mark.parametrize(
    ("profile", "phone", "locale", "zone"),
    [
        ("Europe/Berlin", "(415) 555-0100", "en_US", "Europe/Berlin"),  # the profile wins when it names a zone
        (" Europe/Berlin ", None, None, "Europe/Berlin"),
        (None, "(415) 555-0100", "en_US", "America/Los_Angeles"),
        ("", "(415) 555-0100", "en_US", "America/Los_Angeles"),
        ("Pacific Time", "(415) 555-0100", "en_US", "America/Los_Angeles"),  # was UTC: invalid profile zone
        ("America", "+442079460958", "en_US", "Europe/London"),  # was IsADirectoryError
        (None, "020 7946 0958", "en_GB", "Europe/London"),
        (None, "(415) 555-0100", None, None),  # a national number without a country: unknown
        ("Pacific Time", None, "en_US", None),
        (None, "not a number", "en_US", None),
        (float("nan"), float("nan"), "en_US", None),  # pandas' missing values
    ],
)
def test_recipient_time_zone(profile: object, phone: object, locale: str | None, zone: str | None) -> None:
    assert recipient_time_zone(profile, phone, locale) == zone  # type: ignore[arg-type]


def test_phone_time_zone_of_an_ambiguous_uk_mobile_keeps_uk_time() -> None:
    # UK mobiles also serve the Crown Dependencies: any of their zones keeps London's clock
    zone = phone_time_zone("+447911123456")
    assert zone in {"Europe/London", "Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey"}
    for moment in (_utc(2026, 1, 15, 12, 0), _utc(2026, 7, 15, 12, 0)):
        assert moment.astimezone(ZoneInfo(zone)).utcoffset() == moment.astimezone(ZoneInfo("Europe/London")).utcoffset()


# --------------------------------------------------------------------------- quiet hours


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # London in November is GMT: 10:00 UTC = 10:00 local, inside the window
        (_utc(2026, 11, 2, 10, 0), "Europe/London", _utc(2026, 11, 2, 10, 0)),
        # Berlin in November is UTC+1: 22:00 UTC = 23:00 local -> next day 08:00 local = 07:00 UTC
        (_utc(2026, 11, 2, 22, 0), "Europe/Berlin", _utc(2026, 11, 3, 7, 0)),
        # New York after 1 Nov 2026 is UTC-5: 10:00 UTC = 05:00 local -> 08:00 local = 13:00 UTC
        (_utc(2026, 11, 2, 10, 0), "America/New_York", _utc(2026, 11, 2, 13, 0)),
        # Tokyo UTC+9: 12:30 UTC = 21:30 local -> next day 08:00 local = 23:00 UTC the same UTC day
        (_utc(2026, 11, 2, 12, 30), "Asia/Tokyo", _utc(2026, 11, 2, 23, 0)),
        # boundaries: 08:00 local is allowed, 21:00 local is not
        (_utc(2026, 11, 2, 8, 0), "Europe/London", _utc(2026, 11, 2, 8, 0)),
        (_utc(2026, 11, 2, 20, 59), "Europe/London", _utc(2026, 11, 2, 20, 59)),
        (_utc(2026, 11, 2, 21, 0), "Europe/London", _utc(2026, 11, 3, 8, 0)),
        (_utc(2026, 11, 2, 7, 59), "Europe/London", _utc(2026, 11, 2, 8, 0)),
        # London, the night the clocks go back (25 Oct 2026, 02:00 BST -> 01:00 GMT):
        # 22:30 UTC on the 24th = 23:30 BST -> 08:00 GMT on the 25th = 08:00 UTC
        (_utc(2026, 10, 24, 22, 30), "Europe/London", _utc(2026, 10, 25, 8, 0)),
        # and the night they go forward (29 Mar 2026, 01:00 GMT -> 02:00 BST):
        # 22:00 UTC on the 28th = 22:00 GMT -> 08:00 BST on the 29th = 07:00 UTC
        (_utc(2026, 3, 28, 22, 0), "Europe/London", _utc(2026, 3, 29, 7, 0)),
        # 03:00 UTC on the 29th = 04:00 BST -> 08:00 BST = 07:00 UTC
        (_utc(2026, 3, 29, 3, 0), "Europe/London", _utc(2026, 3, 29, 7, 0)),
        # unknown, missing or malformed zones are treated as UTC
        (_utc(2026, 11, 2, 22, 0), "Mars/Olympus_Mons", _utc(2026, 11, 3, 8, 0)),
        (_utc(2026, 11, 2, 22, 0), None, _utc(2026, 11, 3, 8, 0)),
        (_utc(2026, 11, 2, 5, 0), "", _utc(2026, 11, 2, 8, 0)),
        (_utc(2026, 11, 2, 5, 0), "../../etc/passwd", _utc(2026, 11, 2, 8, 0)),
    ],
    ids=[
        "inside-window", "late-evening-next-morning", "early-morning-same-day", "date-line", "at-start",
        "just-before-end", "at-end", "just-before-start", "dst-ends-london", "dst-starts-london",
        "dst-starts-early-morning", "unknown-zone", "no-zone", "empty-zone", "malformed-zone",
    ],
)  # fmt: skip
def test_next_allowed(now: dt.datetime, zone: str | None, expected: dt.datetime) -> None:
    got = next_allowed(now, zone, 8, 21)
    assert got == expected
    assert got.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("zone", ["America", "Europe", "Pacific Time"])
def test_next_allowed_survives_zones_that_name_no_zone(zone: str) -> None:
    assert next_allowed(_utc(2026, 11, 2, 22, 0), zone, 8, 21) == _utc(2026, 11, 3, 8, 0)


def test_next_allowed_custom_window() -> None:
    # 06:00 UTC in London (GMT) before a 09:00 start -> 09:00; 18:00 with a 17:00 end -> next day 09:00
    assert next_allowed(_utc(2026, 11, 2, 6, 0), "Europe/London", 9, 17) == _utc(2026, 11, 2, 9, 0)
    assert next_allowed(_utc(2026, 11, 2, 18, 0), "Europe/London", 9, 17) == _utc(2026, 11, 3, 9, 0)


def test_next_allowed_accepts_now_in_any_zone() -> None:
    now = dt.datetime(2026, 11, 2, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 22:00 UTC
    assert next_allowed(now, "Europe/London") == _utc(2026, 11, 3, 8, 0)
    inside = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    got = next_allowed(inside, "Europe/London")
    assert got == inside
    assert got.tzinfo == UTC


# --------------------------------------------------------------------------- channel choice

REACH_COLUMNS = ["customer_id", "has_email", "has_phone", "email_consent", "sms_consent", "preferred_channel"]


def _reach(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=REACH_COLUMNS)


@pytest.mark.parametrize(
    ("row", "channel", "reason"),
    [
        (("c", True, True, True, True, "sms"), "sms", None),
        (("c", True, True, True, True, None), "email", None),
        (("c", True, True, True, True, "email"), "email", None),
        (("c", True, True, True, False, "sms"), "email", None),
        (("c", True, False, True, True, "sms"), "email", None),
        (("c", False, True, True, True, None), "sms", None),
        (("c", True, True, False, True, None), "sms", None),
        (("c", True, True, False, False, "sms"), None, "no consent on any channel"),
        (("c", False, False, False, False, None), None, "no consent on any channel"),
        (("c", False, True, True, False, None), None, "no address for a consented channel"),
        (("c", False, False, True, True, "sms"), None, "no address for a consented channel"),
    ],
    ids=[
        "prefers-sms-with-consent", "no-preference-email", "prefers-email", "prefers-sms-without-consent",
        "prefers-sms-without-phone", "only-sms-address", "only-sms-consent", "no-consent",
        "nothing-at-all", "email-consent-no-email", "consents-but-no-addresses",
    ],
)  # fmt: skip
def test_channel_choice(row: tuple, channel: str | None, reason: str | None) -> None:
    out = choose_channels(_reach([row])).iloc[0]
    assert (None if pd.isna(out["channel"]) else out["channel"]) == channel
    assert (None if pd.isna(out["channel_reason"]) else out["channel_reason"]) == reason


def test_suppressed_channels_are_skipped() -> None:
    reach = _reach(
        [
            ("a", True, True, True, True, None),  # email suppressed -> sms
            ("b", True, True, True, True, "sms"),  # sms suppressed -> email
            ("c", True, False, True, False, None),  # only email, suppressed -> nothing
            ("d", True, True, True, True, None),  # both suppressed
            ("e", True, True, True, True, None),  # untouched
        ]
    )
    suppressed = pd.DataFrame(
        [("a", "email"), ("b", "sms"), ("c", "email"), ("d", "email"), ("d", "sms"), ("zz", "email")],
        columns=["customer_id", "channel"],
    )
    out = choose_channels(reach, suppressed).set_index("customer_id")
    assert out.loc["a", "channel"] == "sms"
    assert out.loc["b", "channel"] == "email"
    assert out.loc["e", "channel"] == "email"
    for cid in ("c", "d"):
        assert pd.isna(out.loc[cid, "channel"])
        assert out.loc[cid, "channel_reason"] == "opted out on every consented channel"


def test_empty_suppression_list_changes_nothing() -> None:
    reach = _reach([("a", True, True, True, True, "sms")])
    empty = pd.DataFrame(columns=["customer_id", "channel"])
    assert choose_channels(reach, empty)["channel"].tolist() == ["sms"]


def test_choose_channels_keeps_rows_and_columns() -> None:
    reach = _reach([("a", True, True, True, True, None), ("b", False, False, False, False, None)])
    reach["locale"] = ["en_GB", "de_DE"]
    out = choose_channels(reach)
    assert out["customer_id"].tolist() == ["a", "b"]
    assert out["locale"].tolist() == ["en_GB", "de_DE"]
    assert "channel" not in reach.columns


def test_choose_channels_missing_columns_named() -> None:
    reach = _reach([("a", True, True, True, True, None)]).drop(columns=["sms_consent"])
    with pytest.raises(ValueError, match=r"choose_channels: required columns missing: sms_consent"):
        choose_channels(reach)


# --------------------------------------------------------------------------- unsubscribe tokens

DEV_LINKS = UnsubscribeLinks()  # what an edge with no WINBACK_UNSUBSCRIBE_SECRET or WINBACK_PUBLIC_URL builds


def make_token(customer_id: str, channel: str) -> str:
    return DEV_LINKS.token(customer_id, channel)


def read_token(token: str) -> tuple[str, str]:
    return DEV_LINKS.read(token)


@pytest.mark.parametrize(
    ("customer_id", "channel"),
    [
        ("C000001", "email"),
        ("C000002", "email"),
        ("C000009", "sms"),
        ("cust:with:colons", "email"),
        ("Zoë-42", "sms"),
    ],
    ids=["plain", "plain-2", "sms", "colons-in-id", "non-ascii"],
)
def test_token_round_trip(customer_id: str, channel: str) -> None:
    token = make_token(customer_id, channel)
    assert "=" not in token
    assert read_token(token) == (customer_id, channel)


def test_token_is_hmac_signed_with_the_configured_secret(settings: Settings) -> None:
    payload = b"C000001:email"
    mac = hmac.new(DEV_SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    payload_part, mac_part = make_token("C000001", "email").split(".")
    assert _unb64(payload_part) == payload
    assert _unb64(mac_part) == mac
    dev_token = make_token("C000001", "email")
    other = UnsubscribeLinks.from_settings(settings.model_copy(update={"unsubscribe_secret": SecretStr("another")}))
    assert other.token("C000001", "email") != dev_token
    with pytest.raises(ValueError, match="signature does not match"):
        other.read(dev_token)
    assert other.read(other.token("C000001", "email")) == ("C000001", "email")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _retarget(token: str, old: bytes, new: bytes) -> str:
    payload_part, mac_part = token.split(".")
    return f"{_b64(_unb64(payload_part).replace(old, new, 1))}.{mac_part}"


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"C000001", b"C000002"), (b":email", b":sms")],
    ids=["other-customer", "other-channel"],
)
def test_tampered_token_is_rejected(old: bytes, new: bytes) -> None:
    forged = _retarget(make_token("C000001", "email"), old, new)
    with pytest.raises(ValueError, match="signature does not match"):
        read_token(forged)


@pytest.mark.parametrize(
    "token",
    ["!!!", base64.urlsafe_b64encode(b"no separator here").decode(), "Q"],
    ids=["not-base64", "no-separator", "truncated"],
)
def test_malformed_token_is_rejected(token: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe token is malformed"):
        read_token(token)


def test_truncated_signature_is_rejected() -> None:
    payload_part, mac_part = make_token("C000001", "email").split(".")
    short = f"{payload_part}.{_b64(_unb64(mac_part)[:-1])}"
    with pytest.raises(ValueError, match="signature does not match"):
        read_token(short)


def test_every_genuine_token_round_trips() -> None:
    payload = b"C000009:email"
    assert b"." in hmac.new(DEV_SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    rejected = []
    for i in range(200):
        for channel in ("email", "sms"):
            cid = f"C{i:06d}"
            try:
                read_token(make_token(cid, channel))
            except ValueError:
                rejected.append((cid, channel))
    assert rejected == []


def test_unsubscribe_url(settings: Settings) -> None:
    token = make_token("C000001", "email")
    assert UnsubscribeLinks.from_settings(settings).url("C000001", "email") == (
        f"http://127.0.0.1:8080/unsubscribe/{token}"
    )
    shop = UnsubscribeLinks.from_settings(Settings(public_url="https://shop.example/"))
    assert shop.url("C000001", "email") == f"https://shop.example/unsubscribe/{token}"


def test_sms_without_a_profile_zone_waits_for_the_numbers_morning() -> None:
    import datetime as dt

    import pandas as pd

    from winback.messages.compose import plan_rows

    frame = pd.DataFrame([
        {"customer_id": "C1", "segment": "lapsed", "channel": "sms", "email": None, "phone": "+12125550123",
         "locale": "en_US", "time_zone": None, "first_name": "Al"},
        {"customer_id": "C2", "segment": "lapsed", "channel": "sms", "email": None, "phone": "+447911123456",
         "locale": "en_GB", "time_zone": "Europe/London", "first_name": "Bo"},
    ])  # fmt: skip
    now = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)  # 05:00 in New York, 10:00 in London
    rows = {r["customer_id"]: r for r in plan_rows(frame, 1, now)}
    assert rows["C2"]["not_before"] == now
    assert rows["C1"]["not_before"] == dt.datetime(2026, 11, 2, 13, 0, tzinfo=dt.UTC)  # 08:00 New York


def test_a_us_number_without_a_profile_zone_is_read_with_the_locales_region() -> None:
    """(Was: "(415) 555-0100" parsed without a region had no zone: the SMS went at 01:00 in Los Angeles.)"""
    from winback.messages.compose import plan_rows

    frame = pd.DataFrame([
        {"customer_id": "C1", "segment": "lapsed", "channel": "sms", "email": None, "phone": "(415) 555-0100",
         "locale": "en_US", "time_zone": None, "first_name": "Al"},
        {"customer_id": "C2", "segment": "lapsed", "channel": "email", "email": "c2@example.com",
         "phone": "(415) 555-0100", "locale": "en_US", "time_zone": "Pacific Time", "first_name": "Bo"},
    ])  # fmt: skip
    now = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # 01:00 in Los Angeles
    rows = {r["customer_id"]: r for r in plan_rows(frame, 1, now)}
    assert rows["C1"]["not_before"] == dt.datetime(2026, 11, 2, 16, 0, tzinfo=dt.UTC)  # 08:00 in Los Angeles
    assert rows["C2"]["not_before"] == dt.datetime(2026, 11, 2, 16, 0, tzinfo=dt.UTC)  # the email too
