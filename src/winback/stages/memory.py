"""Giving the C heap's free memory back to the operating system between a run's large steps.

glibc keeps what a million freed objects leave behind (their text, pandas' object columns) in its heap,
resident and counted in the process's size, wherever a live block sits above them. `malloc_trim` hands the
free pages back. Where the C library is not glibc (macOS, musl) there is no such call, and nothing is done.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def release_free_memory() -> bool:
    """Return the heap's free pages to the operating system; whether there was a `malloc_trim` to call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
