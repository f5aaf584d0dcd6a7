"""Contact data and consent: names, email addresses, phone numbers, preferred channels, opt-ins.

Shaped like a real CRM's, flaws included: some addresses are missing and some are broken (no '@', a space,
no TLD; a phone number missing its last digit), so the campaign's contact checks have something to refuse.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from winback.app.demo_data.clock import US_PER_DAY, Clock, to_us
from winback.app.demo_data.latent import Latent
from winback.app.demo_data.parameters import FIRST_NAMES, LAST_NAMES, ZONES
from winback.app.demo_data.text import ascii_word, code_points, digit_code_points, join_code_points


def _names(rng: np.random.Generator, zone: np.ndarray) -> tuple[list[str], list[str]]:
    """First names and email-safe "first.last" handles from each locale's small lists."""
    first_names: list[str] = []
    handles: list[str] = []
    u1, u2 = rng.random(len(zone)), rng.random(len(zone))
    for z, a, b in zip(zone.tolist(), u1.tolist(), u2.tolist(), strict=True):
        locale = ZONES[z].locale
        first = FIRST_NAMES[locale][int(a * len(FIRST_NAMES[locale]))]
        last = LAST_NAMES[locale][int(b * len(LAST_NAMES[locale]))]
        first_names.append(first)
        handles.append(f"{ascii_word(first)}.{ascii_word(last)}")
    return first_names, handles


def _emails(rng: np.random.Generator, handles: list[str], numbers: np.ndarray) -> tuple[list[str | None], int, int]:
    """first.last.<n>@example.com; ≈3 % missing and ≈1 % broken (no '@', a space, or no TLD)."""
    u = rng.random(len(handles))
    kind = rng.integers(0, 3, len(handles))
    out: list[str | None] = []
    for h, n, x, k in zip(handles, numbers.tolist(), u.tolist(), kind.tolist(), strict=True):
        local = f"{h}.{n}"
        if x < 0.03:
            out.append(None)
        elif x < 0.04:
            out.append((f"{local}example.com", f"{local.replace('.', ' ', 1)}@example.com", f"{local}@example")[k])
        else:
            out.append(f"{local}@example.com")
    invalid = int(((u >= 0.03) & (u < 0.04)).sum())
    return out, invalid, int((u < 0.03).sum())


def _phones(
    rng: np.random.Generator, zone: np.ndarray, numbers: np.ndarray, salt: int
) -> tuple[list[str | None], int, int]:
    """Unique E.164 mobiles from valid ranges (a bijection of the customer number).

    ≈30 % missing, ≈1 % invalid.

    Invalid ones lose their last digit (a typo phonenumbers rejects in every range used here; dropping
    three digits is not enough: "+1310200…" truncations can still parse as valid).
    """
    u = rng.random(len(zone))
    out: list[str | None] = [None] * len(zone)
    for z, plan in enumerate(ZONES):
        idx = np.flatnonzero(zone == z)
        if not len(idx):
            continue
        width = plan.subscriber_width
        room = plan.subscriber_high - plan.subscriber_low
        space = len(plan.phone_prefixes) * room
        v = (numbers[idx].astype(np.int64) * 7_919 + salt % space) % space  # 7919 is prime, coprime to every space
        prefix = np.array(plan.phone_prefixes, dtype=np.int64)[v // room]
        national = prefix * 10**width + plan.subscriber_low + v % room
        digits = len(str(plan.phone_prefixes[0])) + width
        broken = u[idx] < 0.01
        national = np.where(broken, national // 10, national)
        valid_text = join_code_points(
            [code_points("+" + plan.country_code), digit_code_points(national, digits)], len(idx)
        )
        short_text = join_code_points(
            [code_points("+" + plan.country_code), digit_code_points(national, digits - 1)], len(idx)
        )
        for j, i in enumerate(idx.tolist()):
            if u[i] >= 0.70:
                continue
            out[i] = short_text[j] if broken[j] else valid_text[j]
    invalid = int((u < 0.01).sum())
    return out, invalid, int((u >= 0.70).sum())


def _preferred_channels(rng: np.random.Generator, has_email: np.ndarray, has_phone: np.ndarray) -> list[str | None]:
    """Email / sms / None, only for channels the customer gave an address for."""
    u = rng.random(len(has_email))
    choice = np.full(len(u), None, dtype=object)
    both = has_email & has_phone
    choice[both & (u < 0.55)] = "email"
    choice[both & (u >= 0.55) & (u < 0.80)] = "sms"
    choice[has_email & ~has_phone & (u < 0.70)] = "email"
    choice[~has_email & has_phone & (u < 0.60)] = "sms"
    return choice.tolist()


def _consents(
    rng: np.random.Generator,
    ids: list[str],
    signup: np.ndarray,
    has_email: np.ndarray,
    has_phone: np.ndarray,
    clock: Clock,
) -> dict[str, Any]:
    """Two rows per customer (email, sms): granted, where it was recorded, and when."""
    n = len(ids)
    import_day = min(45.0, clock.horizon / 4)
    import_year = (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=clock.t0_us + import_day * US_PER_DAY)).year
    granted = np.empty(2 * n, dtype=bool)
    granted[0::2] = has_email & (rng.random(n) < 0.87)
    granted[1::2] = has_phone & (rng.random(n) < 0.45)
    sign = np.repeat(signup, 2)
    in_settings = rng.random(2 * n) < 0.28
    later = sign + rng.random(2 * n) * (clock.horizon - sign)
    imported = sign < import_day
    when = np.where(imported, import_day, np.where(in_settings, later, sign + rng.uniform(0.0005, 0.02, 2 * n)))
    source = np.where(imported, f"import_{import_year}", np.where(in_settings, "account_settings", "checkout"))
    return {
        "customer_id": [c for c in ids for _ in (0, 1)],
        "channel": ["email", "sms"] * n,
        "granted": granted,
        "source": source.tolist(),
        "recorded_at": to_us(clock, np.minimum(when, clock.horizon)),
    }


def customer_rows(
    rng: np.random.Generator, lat: Latent, numbers: np.ndarray, ids: list[str], seed: int, clock: Clock
) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The customers and consents tables of a block, and the contact-data counts."""
    first_names, handles = _names(rng, lat.zone)
    emails, bad_email, no_email = _emails(rng, handles, numbers)
    phones, bad_phone, no_phone = _phones(rng, lat.zone, numbers, salt=seed * 1_000_003)
    has_email = np.array([e is not None for e in emails])
    has_phone = np.array([p is not None for p in phones])
    n = len(ids)
    customers = {
        "customer_id": ids,
        "first_name": first_names,
        "email": emails,
        "phone": phones,
        "locale": [ZONES[z].locale for z in lat.zone.tolist()],
        "time_zone": [ZONES[z].tz for z in lat.zone.tolist()],
        "preferred_channel": _preferred_channels(rng, has_email, has_phone),
        "do_not_contact": rng.random(n) < 0.01,
        "fraud_flag": rng.random(n) < 0.005,
        "signed_up_at": to_us(clock, lat.signup),
    }
    consents = _consents(rng, ids, lat.signup, has_email, has_phone, clock)
    counts = {"invalid_emails": bad_email, "missing_emails": no_email, "invalid_phones": bad_phone,
              "missing_phones": no_phone}  # fmt: skip
    return customers, consents, counts
