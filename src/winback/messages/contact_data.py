"""Bad contact data is skipped with a reason, never a crash: real CRMs are full of it."""

from __future__ import annotations

import functools

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

from winback.messages.quiet_hours import valid_zone

# phonenumbers reaches each metadata pattern through `re.compile`, whose cache lookup is a good part of a
# check (a number's type tries a dozen patterns); kept in phonenumbers' own cache, the campaign's check of an
# SMS candidate's number took 34-37 µs against 44 (bench/phone_check.py: 65,000 demo numbers, eight rounds
# alternated, each quicker). A process-wide setting of phonenumbers, on for whoever imports this module
phonenumbers.enable_pattern_cache()

# The fast path only takes local parts that email_validator returns unchanged whatever its options:
# its strict mode rejects more than 64 characters, so longer ones go the full way.
_FAST_LOCAL_MAX = 64


def normalise_email(address: str | None) -> tuple[str | None, str | None]:
    """(normalised address, None) or (None, reason). Syntax only: no DNS lookups at send time.

    Exactly what `validate_email(address.strip(), check_deliverability=False)` gives, but a plain
    ASCII local part on an already-seen domain costs a regex and a cache hit instead of ~24 µs of
    domain validation per message (sends repeat a handful of domains many thousand times).
    """
    if not address or not address.strip():
        return None, "missing email address"
    stripped = address.strip()
    fast = _fast_normalise(stripped) if isinstance(stripped, str) else None
    if fast is not None:
        return fast, None
    try:
        result = validate_email(stripped, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"
    return result.normalized, None


def _fast_normalise(address: str) -> str | None:
    """The normalised address when email_validator would surely accept it, else None (take the full path).

    validate_email returns a dot-atom ASCII local part as it is (NFC is a no-op on ASCII; only RFC 2142
    names such as Postmaster are lower-cased, and those are left to it), and its domain result depends
    on the domain alone, so the domain is checked once per distinct string. The only rule joining the
    two is the 254-octet limit on the address as given, as normalised and with the IDNA ASCII domain:
    it is checked in bytes, because a short address can still be too long in UTF-8 or after a
    Punycode domain is decoded, so a character-count bound would not be safe.
    """
    if address.count("@") != 1:
        return None
    local, _, domain = address.partition("@")
    if (
        len(local) > _FAST_LOCAL_MAX
        or not DOT_ATOM_TEXT.match(local)  # email_validator's own ASCII-only dot-atom pattern
        or local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES
    ):
        return None
    checked = _checked_domain(domain)
    if checked is None:
        return None
    normalised_domain, longest_domain_bytes = checked
    if len(local) + 1 + longest_domain_bytes > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{normalised_domain}"


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> tuple[str, int] | None:
    """(normalised domain, UTF-8 length of its longest form) via email_validator itself, or None if invalid.

    Validating a stand-in address keeps every domain rule (IDNA, special-use names, TLD shape) theirs.
    Invalid domains are cached as None, not as an error text: the caller then validates the whole
    address, so error messages (and their local-part-first precedence) stay exactly email_validator's.
    """
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    longest = max(len(domain.encode()), len(result.domain.encode()), len(result.ascii_domain.encode()))
    return result.domain, longest


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


_SMS_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
_TYPE_NAMES = {v: k.lower().replace("_", " ") for k, v in vars(phonenumbers.PhoneNumberType).items() if k.isupper()}


def sms_phone_problem(number: object, region: str | None) -> str | None:
    """Why an SMS cannot go to `number`, or None: phonenumbers must read a mobile number, letters not allowed.

    One parse per number (35-45 µs, bench/phone_check.py): a run checks the candidates whose channel is SMS,
    not every customer.
    """
    if not isinstance(number, str) or not number.strip():
        return "no phone number"
    if any(ch.isalpha() for ch in number):
        return "phone number contains letters (a vanity number?)"
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        return f"invalid phone number: {exc}"
    kind = phonenumbers.number_type(parsed)  # UNKNOWN for a number that is not valid
    if kind == phonenumbers.PhoneNumberType.UNKNOWN:
        return "invalid phone number: not a valid number for its region"
    if kind not in _SMS_TYPES:
        return f"not a mobile number ({_TYPE_NAMES.get(kind, 'unknown type')})"
    return None


@functools.lru_cache(maxsize=256)
def locale_region(locale: str | None) -> str | None:
    """The country of a locale ("en_US" -> "US"), the region a national phone number is read in; else None.

    A locale with no country ("en") gives None, which phonenumbers treats as it treats an unknown region.
    """
    if not isinstance(locale, str) or "_" not in locale:
        return None
    return locale.rsplit("_", 1)[-1].upper() or None


def phone_time_zone(number: str | None, region: str | None = None) -> str | None:
    """The recipient's zone from the number when the profile has none (first of several, if ambiguous).

    A national number ("(415) 555-0100") needs its `region` to be read at all: without it, it has no zone.
    """
    from phonenumbers import timezone as pn_timezone

    if not isinstance(number, str) or not number.strip():
        return None
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return None
    return zones[0] if zones and zones[0] != "Etc/Unknown" else None


def recipient_time_zone(profile_zone: str | None, phone: str | None, locale: str | None) -> str | None:
    """The zone quiet hours are kept in.

    A valid profile zone, else the phone's (read in the locale's country), else None (treated as UTC
    downstream).

    An invalid profile zone ("Pacific Time", "America") is no better than none: the phone may still tell.
    """
    return valid_zone(profile_zone) or phone_time_zone(phone, locale_region(locale))
