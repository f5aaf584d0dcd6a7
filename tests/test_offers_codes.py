"""Coupon codes: an unambiguous alphabet, the WB-XXXX-XXXX-XXXX format, uniqueness, and normalising input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from winback.offers import codes
from winback.offers.codes import ALPHABET, new_code, new_codes, normalise

CODE = re.compile(r"^WB-[ACDEFGHJKMNPQRTUVWXY34679]{4}-[ACDEFGHJKMNPQRTUVWXY34679]{4}-[ACDEFGHJKMNPQRTUVWXY34679]{4}$")


def test_alphabet_excludes_characters_misread_for_each_other() -> None:
    assert not set(ALPHABET) & set("0O1IL5S2Z8B")
    assert len(set(ALPHABET)) == len(ALPHABET) == 25
    assert all(ch.isupper() or ch.isdigit() for ch in ALPHABET)
    assert set(ALPHABET) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def test_new_code_format() -> None:
    for _ in range(200):
        assert CODE.match(new_code()), new_code()


def test_new_code_groups_and_prefix() -> None:
    code = new_code(groups=2, prefix="XY")
    assert re.fullmatch(rf"XY-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code)


def test_new_code_uses_the_whole_alphabet() -> None:
    seen = set("".join(new_code().replace("WB-", "").replace("-", "") for _ in range(500)))
    assert seen == set(ALPHABET)


def test_new_codes_are_distinct_and_well_formed() -> None:
    out = new_codes(500)
    assert len(out) == 500
    assert len(set(out)) == 500
    assert all(CODE.match(c) for c in out)


def _feed(monkeypatch: pytest.MonkeyPatch, sequence: list[str]) -> None:
    supply: Iterator[str] = iter(sequence)
    monkeypatch.setattr(codes, "new_code", lambda groups=3, prefix="WB": next(supply))


def test_new_codes_skip_taken_and_repeated_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = {"WB-AAAA-AAAA-AAAA"}
    _feed(
        monkeypatch,
        [
            "WB-AAAA-AAAA-AAAA",
            "WB-CCCC-CCCC-CCCC",
            "WB-CCCC-CCCC-CCCC",
            "WB-AAAA-AAAA-AAAA",
            "WB-DDDD-DDDD-DDDD",
        ],
    )
    assert new_codes(2, taken=taken) == ["WB-CCCC-CCCC-CCCC", "WB-DDDD-DDDD-DDDD"]
    assert taken == {"WB-AAAA-AAAA-AAAA"}  # the caller's set is not modified


def test_new_codes_zero() -> None:
    assert new_codes(0) == []


@pytest.mark.parametrize(
    "typed",
    [
        "WB-ACDE-FGHJ-KMNP",
        "wb-acde-fghj-kmnp",
        "  wb acde fghj kmnp  ",
        "WBACDEFGHJKMNP",
        "wb-ACDE fghjKMNP",
        "W-B-A-C-D-E-F-G-H-J-K-M-N-P",
    ],
    ids=["canonical", "lower-case", "spaces", "no-dashes", "mixed", "dashes-everywhere"],
)
def test_normalise_accepts_what_customers_type(typed: str) -> None:
    assert normalise(typed) == "WB-ACDE-FGHJ-KMNP"


def test_normalise_round_trips_generated_codes() -> None:
    for code in new_codes(50):
        assert normalise(code.lower().replace("-", " ")) == code


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("XX-ACDE-FGHJ-KMNP", "not a winback code"),
        ("SAVE10", "not a winback code"),
        ("WB-ACD", "not a winback code"),
        ("", "not a winback code"),
        ("WB-ACDE-FGH", "malformed"),
        ("WB-0CDE-FGHJ-KMNP", "malformed"),
        ("WB-OCDE-FGHJ-KMNP", "malformed"),
        ("WB-ACDE-FGHJ-KMN5", "malformed"),
        ("WB-ACDE-FGHJ-KMN!", "malformed"),
        ("WB-ACDE-FGHJ-KMNP-Q", "malformed"),
    ],
    ids=[
        "foreign-prefix", "foreign-code", "too-short", "empty", "short-group", "zero", "letter-o", "digit-5",
        "punctuation", "dangling-char",
    ],
)  # fmt: skip
def test_normalise_rejects_foreign_and_malformed_codes(typed: str, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"coupon code {re.escape(repr(typed))}: {problem}"):
        normalise(typed)
