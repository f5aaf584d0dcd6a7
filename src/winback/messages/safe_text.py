"""Customer data made safe for a header line and a bounded length, before it reaches a provider.

Names, order ids and descriptions come from the customer's warehouse, so they can hold anything: CR-LF and
"Bcc:" (a header injected into the email), NUL and escape characters, a right-to-left override that makes a
subject read backwards, 10,000 characters. Everything that reaches a header (subject, sender name, custom
args) goes through `header_value`: control and bidirectional-override characters become spaces or vanish,
the result is one line. Lengths are capped with `shorten`: at a word boundary, with a visible ellipsis.

HTML and Jinja in these values need nothing here: templates receive them as data (Jinja never evaluates a
value) and the HTML templates escape them.
"""

from __future__ import annotations

import re

SUBJECT_MAX_CHARS = 150  # what mail clients show and what spam filters expect; well under RFC 5322's 998 a line
NAME_MAX_CHARS = 60  # a customer's name as written into copy (greeting, subject)
ORDER_REF_MAX_CHARS = 64  # an order id as quoted in copy: a UUID (36) fits with room to spare
DESCRIPTION_MAX_CHARS = 300  # a failure's description, quoted inline in an apology
SENDER_NAME_MAX_CHARS = 100  # a sender display name
CUSTOM_ARG_MAX_CHARS = 256  # one SendGrid custom arg value (all of them share a 10,000-byte budget)
SMS_MAX_CHARS = 1600  # Twilio refuses a longer Body (error 21617)
ELLIPSIS = "…"

# C0 and C1 controls (CR, LF, TAB, NUL, ESC, NEL, ...), DEL, the Unicode line and paragraph separators
_LINE_BREAKING = "\x00-\x1f\x7f-\x9f\u2028\u2029"
# bidirectional embeddings, overrides, isolates and marks; the byte-order mark; interlinear annotation marks
_INVISIBLE = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufff9-\ufffb"
_UNSAFE_ONE_LINE = re.compile(f"[{_LINE_BREAKING}]+")
_UNSAFE_KEEPING_NEWLINES = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]+")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]+")
_SPACES = re.compile(r"[ \t]{2,}")
_TRAILING_JUNK = " \t\n,;:-–—.…("


def one_line(value: object) -> str:
    """`value` as one line of visible text: control characters become a space, invisible controls vanish.

    Runs of spaces left behind collapse to one; no-break spaces (as babel writes amounts) are kept.
    """
    text = "" if value is None else str(value)
    if text.isprintable() and "  " not in text:  # the usual name or id: nothing to remove (a fast path)
        return text.strip()
    text = _INVISIBLE_RE.sub("", text)
    text = _UNSAFE_ONE_LINE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def without_controls(value: object) -> str:
    """`value` with its line breaks kept (CR-LF and lone CR become LF) and every other control removed.

    For message bodies (a text part, an SMS): their lines are content, not header structure.
    """
    text = "" if value is None else str(value)
    text = _INVISIBLE_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _UNSAFE_KEEPING_NEWLINES.sub(" ", text)


def shorten(text: str, max_chars: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` within `max_chars` characters, cut at a word boundary and marked with `ellipsis` if it was long.

    A cut falls on the last space that keeps at least half the room; a text without one (a 10,000-letter
    "name") is cut between characters. Trailing punctuation before the ellipsis is dropped.

    Parameters
    ----------
    text : str
        The text, already one line or not; only its length is judged.
    max_chars : int
        The most characters the result may have, ellipsis included.
    ellipsis : str
        What marks a shortened text ("…" by default; "..." where one character must not change the encoding).

    Returns
    -------
    str
        `text` itself when it fits, else a prefix of it plus `ellipsis`.
    """
    if max_chars <= len(ellipsis):
        raise ValueError(f"max_chars must exceed the ellipsis' length, got {max_chars}")
    if len(text) <= max_chars:
        return text
    room = max_chars - len(ellipsis)
    head = text[: room + 1]  # one more: a space just after the room is a clean cut too
    cut = head.rfind(" ")
    prefix = head[:cut] if cut >= room // 2 else text[:room]
    prefix = prefix.rstrip(_TRAILING_JUNK) or text[:room]
    return prefix + ellipsis


def header_value(value: object, max_chars: int) -> str:
    """`value` fit for a header: one line (`one_line`) and at most `max_chars` characters (`shorten`)."""
    return shorten(one_line(value), max_chars)


def subject_line(value: object) -> str:
    """An email subject: one line of at most SUBJECT_MAX_CHARS characters."""
    return header_value(value, SUBJECT_MAX_CHARS)


def sms_body(text: str) -> str:
    """An SMS body as a provider gets it: line breaks kept, every other control character removed.

    Not shortened here: the renderer keeps an SMS within its segment budget (far under SMS_MAX_CHARS) with
    the opt-out wording last; cutting a longer body built elsewhere would cut that wording off, so Twilio's
    refusal (21617, a Failed send that names the limit) is the better outcome.
    """
    return without_controls(text).strip()
