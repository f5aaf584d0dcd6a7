"""Benchmark: email normalisation per address, validate_email on every message vs the cached-domain fast path.

    .venv/bin/python bench/email_check.py [--addresses 200000] [--seed 7]

Addresses are shaped like app/demo_data/contacts.py `_emails`: first.last.<n>@example.com, ≈3 % missing and
≈1 % broken (no '@', a space, or no TLD). Both paths must give identical answers. Last line:
old_us=… new_us=… per address
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winback.messages.contact_data import _checked_domain, normalise_email

FIRST = ["ada", "juergen", "marie", "oliver", "sofia", "liam", "emma", "noah", "hannah", "lucas", "chloe", "yuki"]
LAST = ["lovelace", "mueller", "curie", "smith", "rossi", "murphy", "martin", "schmidt", "dubois", "tanaka"]


def demo_addresses(n: int, seed: int) -> list[str | None]:
    """Demo-shaped addresses (the same mix of missing and broken ones as the demo warehouse)."""
    rng = random.Random(seed)
    out: list[str | None] = []
    for number in range(1, n + 1):
        local = f"{rng.choice(FIRST)}.{rng.choice(LAST)}.{number}"
        x = rng.random()
        if x < 0.03:
            out.append(None)
        elif x < 0.04:
            broken = (f"{local}example.com", f"{local.replace('.', ' ', 1)}@example.com", f"{local}@example")
            out.append(rng.choice(broken))
        else:
            out.append(f"{local}@example.com")
    return out


def old_normalise_email(address: str | None) -> tuple[str | None, str | None]:
    """normalise_email before the fast path: validate_email for every message."""
    if not address or not address.strip():
        return None, "missing email address"
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"
    return result.normalized, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    addresses = demo_addresses(args.addresses, args.seed)

    start = time.perf_counter()
    old = [old_normalise_email(a) for a in addresses]
    old_s = time.perf_counter() - start

    _checked_domain.cache_clear()  # cold cache: the first message per domain pays for validation
    start = time.perf_counter()
    new = [normalise_email(a) for a in addresses]
    new_s = time.perf_counter() - start

    if old != new:
        raise SystemExit("the two paths disagree")
    valid = sum(r[0] is not None for r in new)
    print(f"addresses={len(addresses)} valid={valid} speedup={old_s / new_s:.0f}x")
    print(f"old_us={old_s / len(addresses) * 1e6:.2f} new_us={new_s / len(addresses) * 1e6:.2f} per address")


if __name__ == "__main__":
    main()
