"""Contact data, quiet hours, channel choice and signed unsubscribe links."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from messages.channel_choice import choose_channels
from messages.contact_data import normalise_email, normalise_phone, phone_time_zone
from messages.quiet_hours import next_allowed
from messages.unsubscribe import DEV_SECRET, make_token, read_token, unsubscribe_url

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


def test_token_is_hmac_signed_with_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"C000001:email"
    mac = hmac.new(DEV_SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    payload_part, mac_part = make_token("C000001", "email").split(".")
    assert _unb64(payload_part) == payload
    assert _unb64(mac_part) == mac
    dev_token = make_token("C000001", "email")
    monkeypatch.setenv("WINBACK_UNSUBSCRIBE_SECRET", "another-secret")
    assert make_token("C000001", "email") != dev_token
    with pytest.raises(ValueError, match="signature does not match"):
        read_token(dev_token)
    assert read_token(make_token("C000001", "email")) == ("C000001", "email")


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


def test_unsubscribe_url(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token("C000001", "email")
    assert unsubscribe_url("C000001", "email") == f"http://127.0.0.1:8080/unsubscribe/{token}"
    monkeypatch.setenv("WINBACK_PUBLIC_URL", "https://shop.example/")
    assert unsubscribe_url("C000001", "email") == f"https://shop.example/unsubscribe/{token}"


def test_sms_without_a_profile_zone_waits_for_the_numbers_morning() -> None:
    import datetime as dt

    import pandas as pd

    from messages.compose import plan_rows

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
