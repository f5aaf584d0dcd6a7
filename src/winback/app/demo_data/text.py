"""Vectorised text: ids, timestamps and phone numbers built from numpy code points, not Python loops.

Ten million order ids and timestamps are built per million customers: a per-row f-string is most of the
generator's time, so rows are assembled as UTF-32 code-point blocks and viewed as strings at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import cache

import numpy as np

from winback.app.demo_data.clock import NULL_TS


def code_points(s: str) -> np.ndarray:
    """The UTF-32 code points of `s`: a block that `join_code_points` repeats on every row."""
    return np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)


def join_code_points(parts: Sequence[np.ndarray], n: int) -> list[str]:
    """Concatenate per-row code-point blocks ((n, k) or (k,) arrays) into n Python strings."""
    blocks = [np.broadcast_to(p, (n, p.shape[-1])) for p in parts]
    codes = np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.uint32)
    return codes.view(f"<U{codes.shape[1]}").ravel().tolist()


def digit_code_points(numbers: np.ndarray, width: int) -> np.ndarray:
    """The zero-padded decimal digits of each number as an (n, width) block of code points."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((numbers.astype(np.int64)[:, None] // powers) % 10 + 48).astype(np.uint32)


def id_strings(prefix: str, numbers: np.ndarray, width: int) -> list[str]:
    """Zero-padded ids like "C0000042", built without a Python loop (10M order ids matter)."""
    return join_code_points([code_points(prefix), digit_code_points(numbers, width)], len(numbers))


def timestamp_strings(us: np.ndarray, suffix: str = "") -> list[str | None]:
    """µs since the epoch → "YYYY-MM-DD HH:MM:SS.ffffff" + suffix; NULL_TS → None."""
    null = us == NULL_TS
    text_ = np.datetime_as_string(np.where(null, 0, us).astype("datetime64[us]"), unit="us")
    codes = text_.astype("<U26").view(np.uint32).reshape(len(us), 26).copy()
    codes[:, 10] = ord(" ")
    out: list[str | None] = (
        join_code_points([codes, code_points(suffix)], len(us)) if suffix else join_code_points([codes], len(us))
    )
    for i in np.flatnonzero(null).tolist():
        out[i] = None
    return out


@cache
def ascii_word(name: str) -> str:
    """Fold a name into an email-safe lowercase ASCII word ("Jürgen" → "juergen", "O'Neill" → "oneill")."""
    folded = name.lower().replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if c.isalnum())
