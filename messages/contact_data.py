"""Bad contact data is skipped with a reason, never a crash: real CRMs are full of it."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


def normalise_email(address: str | None) -> tuple[str | None, str | None]:
    """(normalised address, None) or (None, reason). Syntax only: no DNS lookups at send time."""
    if not address or not address.strip():
        return None, "missing email address"
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"
    return result.normalized, None


def normalise_phone(number: str | None, region: str | None = None) -> tuple[str | None, str | None]:
    """(E.164 number, None) or (None, reason)."""
    if not number or not number.strip():
        return None, "missing phone number"
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"invalid phone number: {exc}"
    if not phonenumbers.is_valid_number(parsed):
        return None, "invalid phone number: not a valid number for its region"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def phone_time_zone(e164: str) -> str | None:
    """The recipient's zone from the number when the profile has none (first of several, if ambiguous)."""
    from phonenumbers import timezone as pn_timezone

    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    return zones[0] if zones and zones[0] != "Etc/Unknown" else None
