r"""How many SMS segments a text costs, and how to make a text fit a segment budget.

Carriers bill per segment. A text that uses only the GSM 03.38 alphabet travels as 7-bit septets: 160 in a
single SMS, 153 per part once it is split (the concatenation header takes the rest); characters from the
GSM extension table (`€ [ ] { } \ ~ ^ |` and form feed) take two septets. One character outside GSM 03.38
(an emoji, a curly quote, `…`) switches the whole text to UCS-2: 70 UTF-16 units in a single SMS, 67 per
part, and characters outside the Basic Multilingual Plane (most emoji) take two units. Encoders never split
an escape sequence or a surrogate pair across parts, so a part can hold one unit less than its nominal size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
_TRAILING_JUNK = " \t\r\n,;:-–—"


@dataclass(frozen=True)
class SmsSize:
    """`units` are septets for GSM-7, UTF-16 code units for UCS-2."""

    encoding: Encoding
    units: int
    segments: int


# Characters with a plain GSM-7 equivalent that reads the same (what Twilio's "Smart Encoding" replaces): babel
# writes "10 %" and "15,00 €" with no-break spaces, and one of them would switch a whole SMS to UCS-2.
_GSM_EQUIVALENTS = str.maketrans(
    {
        "\u00a0": " ",  # no-break space
        "\u202f": " ",  # narrow no-break space (fr_FR amounts)
        "\u2007": " ",  # figure space
        "\u2009": " ",  # thin space
        "\u200a": " ",  # hair space
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
    }
)


def gsm_friendly(text: str) -> str:
    """`text` with spaces, quotes, dashes and the ellipsis replaced by their plain GSM-7 look-alikes.

    Letters are left alone: a name written with a letter GSM-7 lacks keeps it, and its SMS is sent as UCS-2.
    """
    return text.translate(_GSM_EQUIVALENTS)


def encoding_of(text: str) -> Encoding:
    """`GSM-7` when every character is in the GSM alphabet (basic or extension), else `UCS-2`."""
    return "GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else "UCS-2"


def measure(text: str) -> SmsSize:
    """Encoding, size and segment count of `text`; an empty text still costs one SMS."""
    encoding = encoding_of(text)
    widths = [_width(ch, encoding) for ch in text]
    units = sum(widths)
    single, per_part = _LIMITS[encoding]
    if units <= single:
        return SmsSize(encoding, units, 1)
    segments, used = 1, 0
    for width in widths:
        if used + width > per_part:
            segments, used = segments + 1, 0
        used += width
    return SmsSize(encoding, units, segments)


def count_segments(text: str) -> int:
    """How many SMS parts `text` is billed as."""
    return measure(text).segments


def fit_sms(
    body: str,
    opt_out: str = "Reply STOP to opt out",
    max_segments: int = 2,
    *,
    separator: str = "\n",
) -> str:
    """`body` plus the opt-out wording, within `max_segments`; the body is shortened if it must be.

    The opt-out wording always ends the text (it is the compliance part). A shortened body is cut at a word
    boundary (failing that, at a character) and marked with an ellipsis: "..." while the rest is GSM-7,
    since a single "…" would switch the whole text to UCS-2 and roughly halve the room. Raises ValueError if
    even the opt-out wording alone exceeds the budget.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    opt_out = opt_out.strip()
    body = _without_trailing_opt_out(body.strip(), opt_out)
    if count_segments(opt_out) > max_segments:
        raise ValueError(f"the opt-out wording alone needs more than {max_segments} SMS segment(s)")
    if not body:
        return opt_out
    whole = f"{body}{separator}{opt_out}"
    if count_segments(whole) <= max_segments:
        return whole
    longest = _LIMITS["GSM-7"][0] * max_segments  # no longer prefix can fit, whatever its encoding
    for cut in (*_word_cuts(body, longest), *_char_cuts(body, longest)):
        prefix = body[:cut].rstrip(_TRAILING_JUNK)
        if not prefix:
            continue
        candidate = f"{prefix}{_ellipsis(prefix, opt_out)}{separator}{opt_out}"
        if count_segments(candidate) <= max_segments:
            return candidate
    return opt_out


def _width(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def _ellipsis(prefix: str, opt_out: str) -> str:
    return "..." if encoding_of(prefix + opt_out) == "GSM-7" else "…"


def _word_cuts(body: str, longest: int) -> list[int]:
    """Offsets just before each whitespace run, longest first."""
    return sorted({m.start() for m in re.finditer(r"\s+", body) if m.start() <= longest}, reverse=True)


def _char_cuts(body: str, longest: int) -> range:
    return range(min(len(body) - 1, longest), 0, -1)


def _without_trailing_opt_out(body: str, opt_out: str) -> str:
    """A body that already ends with the opt-out wording must not get it twice."""
    if opt_out and body.lower().rstrip(".! ").endswith(opt_out.lower().rstrip(".! ")):
        return body[: body.lower().rfind(opt_out.lower().rstrip(".! "))].rstrip()
    return body
