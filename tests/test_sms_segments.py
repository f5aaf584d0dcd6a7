"""SMS segment counting and fitting, on known examples."""

from __future__ import annotations

import pytest

from winback.messages.sms_segments import SmsSize, count_segments, encoding_of, fit_sms, measure

EMOJI = "😀"  # outside the BMP: a surrogate pair, two UCS-2 units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsSize("GSM-7", 0, 1)),
        ("a" * 160, SmsSize("GSM-7", 160, 1)),
        ("a" * 161, SmsSize("GSM-7", 161, 2)),
        ("a" * 306, SmsSize("GSM-7", 306, 2)),
        ("a" * 307, SmsSize("GSM-7", 307, 3)),
        ("€" * 80, SmsSize("GSM-7", 160, 1)),
        ("€" + "a" * 159, SmsSize("GSM-7", 161, 2)),
        ("Grüße aus Köln: ñ, é, à, Ç, Ø, Δ", SmsSize("GSM-7", 32, 1)),  # all in the GSM-7 basic set
        ("naïve", SmsSize("UCS-2", 5, 1)),  # ï is not (ì is)
        ("ç" * 70, SmsSize("UCS-2", 70, 1)),  # lower-case ç is not GSM-7 (only Ç is)
        ("ç" * 71, SmsSize("UCS-2", 71, 2)),
        ("a" * 134, SmsSize("GSM-7", 134, 1)),
        ("a" * 134 + "’", SmsSize("UCS-2", 135, 3)),  # a curly apostrophe turns a 1-SMS text into 3
        (EMOJI * 35, SmsSize("UCS-2", 70, 1)),
        (EMOJI * 36, SmsSize("UCS-2", 72, 2)),
    ],
)
def test_measure_known_examples(text: str, expected: SmsSize) -> None:
    assert measure(text) == expected


def test_one_emoji_switches_to_ucs2() -> None:
    text = "Your 20% off code is WINBACK" + EMOJI
    assert encoding_of(text[:-1]) == "GSM-7"
    assert encoding_of(text) == "UCS-2"
    assert measure(text).units == 28 + 2


def test_extension_characters_are_never_split_across_parts() -> None:
    # 152 plain septets then '€' (2): part 1 can only take 152 + nothing, so '€' opens part 2.
    text = "a" * 152 + "€" + "a" * 10
    assert measure(text).units == 164
    assert count_segments(text) == 2
    assert count_segments("a" * 152 + "€" + "a" * 152) == 3  # 152 | 2+151 | 1 — naive ceil(306/153) says 2


def test_surrogate_pairs_are_never_split_across_parts() -> None:
    assert count_segments("ç" * 66 + EMOJI + "ç" * 65) == 2  # 66+2 > 67: the emoji opens part 2 (2+65)
    assert count_segments("ç" * 66 + EMOJI + "ç" * 66) == 3


def test_fit_sms_keeps_a_short_body_whole() -> None:
    assert fit_sms("Hi Jane, 20% off today.") == "Hi Jane, 20% off today.\nReply STOP to opt out"


def test_fit_sms_shortens_at_a_word_boundary_with_an_ellipsis() -> None:
    body = " ".join(["discount"] * 60)  # 539 chars
    fitted = fit_sms(body, max_segments=2)

    assert fitted.endswith("...\nReply STOP to opt out")
    assert count_segments(fitted) == 2 and len(fitted) <= 306
    assert fitted.split("...")[0].split() == ["discount"] * len(fitted.split("...")[0].split())
    assert len(fitted) > 306 - len(" discount...")  # as long as it can be


def test_fit_sms_uses_a_gsm_ellipsis_so_the_text_stays_gsm() -> None:
    fitted = fit_sms("word " * 100, max_segments=1)
    assert encoding_of(fitted) == "GSM-7" and count_segments(fitted) == 1
    assert "…" not in fitted


def test_fit_sms_in_ucs2_keeps_ucs2_limits() -> None:
    fitted = fit_sms(("Grüße " + EMOJI + " ") * 30, max_segments=2)
    assert encoding_of(fitted) == "UCS-2"
    assert count_segments(fitted) <= 2 and fitted.endswith("…\nReply STOP to opt out")


def test_fit_sms_does_not_repeat_an_opt_out_the_body_already_has() -> None:
    assert fit_sms("20% off. Reply STOP to opt out.") == "20% off.\nReply STOP to opt out"


def test_fit_sms_cuts_inside_a_word_when_there_is_no_boundary() -> None:
    fitted = fit_sms("x" * 400, max_segments=1)
    assert fitted == "x" * (160 - len("...\nReply STOP to opt out")) + "...\nReply STOP to opt out"


def test_fit_sms_falls_back_to_the_opt_out_alone() -> None:
    assert fit_sms("Hi", opt_out="o" * 160, max_segments=1) == "o" * 160


def test_fit_sms_raises_when_the_opt_out_alone_cannot_fit() -> None:
    with pytest.raises(ValueError, match="opt-out"):
        fit_sms("Hi", opt_out="o" * 161, max_segments=1)
    with pytest.raises(ValueError):
        fit_sms("Hi", max_segments=0)
