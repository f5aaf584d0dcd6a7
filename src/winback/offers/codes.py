"""Single-use coupon codes: random from `secrets`, in an alphabet nobody misreads on a receipt."""

from __future__ import annotations

import secrets

# no 0/O, 1/I/L, 5/S, 2/Z, 8/B: codes are read aloud to support agents and typed from phones
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
GROUP = 4


def new_code(groups: int = 3, prefix: str = "WB") -> str:
    """A code like WB-7KQX-M3TA-RVF9: about 56 bits of entropy with the default three groups (12 letters of 25)."""
    parts = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(groups)]
    return "-".join([prefix, *parts])


def new_codes(count: int, groups: int = 3, prefix: str = "WB", taken: set[str] | None = None) -> list[str]:
    """`count` distinct codes, none in `taken`; the database's unique index is the final guard."""
    taken = set(taken or ())
    out: list[str] = []
    while len(out) < count:
        code = new_code(groups, prefix)
        if code not in taken:
            taken.add(code)
            out.append(code)
    return out


def normalise(code: str) -> str:
    """What a customer typed, as stored: upper case, dashes where they belong."""
    raw = code.strip().upper().replace(" ", "").replace("-", "")
    if not raw.startswith("WB") or len(raw) < 2 + GROUP:
        raise ValueError(f"coupon code {code!r}: not a winback code")
    body = raw[2:]
    if len(body) % GROUP or any(ch not in ALPHABET for ch in body):
        raise ValueError(f"coupon code {code!r}: malformed")
    return "-".join(["WB", *(body[i : i + GROUP] for i in range(0, len(body), GROUP))])
