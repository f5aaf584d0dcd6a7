"""Benchmark: the SMS candidates' phone check per number, phonenumbers' pattern cache off against on.

    .venv/bin/python bench/phone_check.py [--numbers 65000] [--rounds 4] [--seed 7]

A campaign checks each SMS candidate's number before SMS is kept (`messages.contact_data.sms_phone_problem`: one
parse and the number's type); 1M customers give ~65,000 such numbers. The numbers here are the demo shop's
(app/demo_data/contacts.py: E.164 mobiles of its zones, ≈1 % missing their last digit), each read in its
customer's region. winback turns phonenumbers' own pattern cache on (`messages/contact_data.py`); off is
phonenumbers' default, where each of a check's dozen patterns goes through `re.compile`'s cache lookup. The
two alternate, `--rounds` times each, in this process, and must give the same answers. Last line:
numbers=… uncached_us=… cached_us=… (per number, the median round) problems=…
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import phonenumbers.re_util

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winback.app.demo_data.contacts import _phones
from winback.app.demo_data.parameters import ZONES
from winback.messages.contact_data import locale_region, sms_phone_problem


def demo_numbers(n: int, seed: int) -> list[tuple[str, str | None]]:
    """(number, region) pairs as the demo shop's customers have them, missing numbers left out."""
    rng = np.random.default_rng(seed)
    share = np.array([zone.share for zone in ZONES])
    zone = rng.choice(len(ZONES), size=2 * n, p=share / share.sum())
    phones, _, _ = _phones(rng, zone, np.arange(1, 2 * n + 1), salt=seed)
    pairs = [(p, locale_region(ZONES[z].locale)) for p, z in zip(phones, zone.tolist(), strict=True) if p]
    return pairs[:n]


def timed(pairs: list[tuple[str, str | None]], cached: bool) -> tuple[float, list[str | None]]:
    """Seconds to check every pair, and the answers; phonenumbers' pattern cache on or off (emptied)."""
    phonenumbers.re_util._COMPILED_PATTERNS = {} if cached else None  # its private switch: off is its default
    start = time.perf_counter()
    answers = [sms_phone_problem(number, region) for number, region in pairs]
    return time.perf_counter() - start, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=65_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pairs = demo_numbers(args.numbers, args.seed)
    timed(pairs[:1000], cached=False)  # phonenumbers loads each region's metadata on first use
    rounds: dict[bool, list[float]] = {False: [], True: []}
    answers: dict[bool, list[str | None]] = {}
    for _ in range(args.rounds):
        for cached in (False, True):
            seconds, answers[cached] = timed(pairs, cached)
            rounds[cached].append(seconds)
    if answers[False] != answers[True]:
        raise SystemExit("the cached check answered differently")
    per = {cached: statistics.median(times) / len(pairs) * 1e6 for cached, times in rounds.items()}
    print(f"rounds (s) uncached {[round(t, 2) for t in rounds[False]]} cached {[round(t, 2) for t in rounds[True]]}")
    problems = sum(answer is not None for answer in answers[True])
    print(f"numbers={len(pairs)} uncached_us={per[False]:.1f} cached_us={per[True]:.1f} problems={problems}")


if __name__ == "__main__":
    main()
