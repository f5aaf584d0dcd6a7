"""Mask personal data before it reaches a log line or a stored failure reason.

Logs and outbox failure reasons outlive the customer's consent, so they must never hold a full email address
or phone number. The masks keep just enough to debug deliverability (the email domain, a phone number's
country prefix) and use a fixed-width run of stars so a mask never reveals the original's length.
"""

from __future__ import annotations

import re

_STARS = "*****"
# The local part leaves out `/ = ? &`, legal but unseen in real addresses, so an address inside a URL query
# (`?email=jane@example.com`) is masked without swallowing the URL before it. `%40` is an `@` percent-encoded,
# as it is in a link's query string.
_EMAIL_RE = re.compile(
    r"(?P<local>[A-Za-z0-9.!#$%'*+^_`{|}~-]+)(?P<at>@|%40)(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)",
    re.IGNORECASE,
)
# Eight or more digits, optionally led by '+': long enough to be a phone number, too long to be an error code
# such as Twilio's 21211 or an HTTP status.
_PHONE_RE = re.compile(r"(?<![\w+])\+?\d{8,15}(?!\w)")


def mask_email(address: str) -> str:
    """`jane.doe@example.com` -> `j***@example.com`; anything without a domain -> `***`."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str) -> str:
    """`+447700900123` -> `+4477*****23`: country and area prefix, a fixed mask, the last two digits."""
    compact = re.sub(r"[\s().-]", "", number.strip())
    if len(compact) < 8:
        return "***"
    return f"{compact[:5]}{_STARS}{compact[-2:]}"


def redact_text(text: str) -> str:
    """Mask every email address and phone number inside free text (e.g. a provider's error message, a URL).

    Addresses get `mask_email`'s shape, `%40` kept as it was written.
    """
    masked = _EMAIL_RE.sub(lambda m: f"{m['local'][:1]}***{m['at']}{m['domain']}", text)
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), masked)
