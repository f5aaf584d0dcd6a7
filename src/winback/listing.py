"""Naming the records an error is about, in one line: the first few and how many more.

An error that names its records can be acted on; one that prints a million ids cannot be read. Every
message that lists offending customers, rows or messages uses this, so they all read alike.
"""

from __future__ import annotations

from collections.abc import Iterable


def first_few(keys: Iterable[object], shown: int = 5) -> str:
    """The first `shown` distinct keys, in order, and how many more: "C1, C2, C3, C4, C5 and 12 more".

    Parameters
    ----------
    keys
        The offending records' keys (ids), in the order to show them; repeats count once.
    shown
        How many to name.

    Returns
    -------
    str
        The keys joined with ", ", followed by " and N more" when there are more than `shown`.
    """
    distinct = list(dict.fromkeys(str(key) for key in keys))
    more = f" and {len(distinct) - shown} more" if len(distinct) > shown else ""
    return ", ".join(distinct[:shown]) + more
