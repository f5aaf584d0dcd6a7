"""Text built column-wise on numpy object arrays: the reasons and phrases given for every customer.

`+` on object arrays is Python's own str concatenation per element. pandas' string dtype re-validates
every intermediate result instead, which made the text most of the time spent deciding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def strings(values: pd.Series, missing: str = "") -> np.ndarray:
    """A column as an object array of str, `missing` where absent (as fillna(missing).astype(str))."""
    return str_each(values.to_numpy(dtype=object, na_value=missing))


def str_each(values: np.ndarray) -> np.ndarray:
    """str() of each value, as an object array: numbers print as Python (and pandas' astype(str)) prints them."""
    return np.fromiter(map(str, values.tolist()), dtype=object, count=len(values))


def money(values: np.ndarray) -> np.ndarray:
    """Each amount with two decimals."""
    return np.fromiter(map("{:.2f}".format, values.tolist()), dtype=object, count=len(values))


def formatted(template: str, *columns: list[Any]) -> np.ndarray:
    """``template % values`` for each position of the equal-length `columns`, as an object array.

    One `%` per row instead of a `+` per part: each part's text is written once into the row's string,
    not copied into a new intermediate string at every step. `%s` prints a value as `str()` does, `%.2f`
    as `money` does.
    """
    return np.fromiter(
        (template % values for values in zip(*columns, strict=True)),
        dtype=object,
        count=len(columns[0]) if columns else 0,
    )
