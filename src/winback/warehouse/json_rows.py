"""A frame's rows as JSON objects (text), fast enough for every decision of a million-customer run.

pandas' ``to_json(orient="records")`` spends ~0.4 µs per value, one ``json.dumps`` per row more; here each
column is serialised once by orjson (numbers from the numpy array in one call, text one level at a time)
and the rows are assembled with one ``%`` template per group: about 0.15 µs per value. Within a group (a
segment), a column with no value at all is left out of its objects rather than written as null on every row.
"""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

DECIMALS = 4  # after the point: a day to ten seconds, money to a hundredth of a cent


def _split(values: np.ndarray) -> np.ndarray:
    """A 1-d numeric array's values as JSON texts, by one orjson call (NaN becomes null)."""
    return np.array(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(","), dtype=object)


def _level(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return orjson.dumps(value if isinstance(value, bool | int | float) else str(value)).decode()


def _texts(column: pd.Series) -> np.ndarray:
    """Each value as JSON text: numbers (NaN and infinities as null), booleans, and text (missing as null)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) and not column.hasnans:
        return np.where(column.to_numpy(dtype=bool), "true", "false").astype(object)
    if pd.api.types.is_integer_dtype(dtype) and not column.hasnans:
        return _split(column.to_numpy(dtype=np.int64))
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values = np.round(column.to_numpy(dtype=float, na_value=np.nan), DECIMALS)
        values[~np.isfinite(values)] = np.nan  # orjson writes NaN as null; an infinity is no number either
        return _split(values)
    codes, levels = pd.factorize(column, use_na_sentinel=True)
    return np.array([*(_level(v) for v in levels), "null"], dtype=object)[codes]  # missing (-1) takes the last


def json_objects(frame: pd.DataFrame, groups: pd.Series | None = None) -> list[str | None]:
    """One JSON object per row of ``frame``, keys in column order; None for a row with nothing to say.

    Parameters
    ----------
    frame
        The columns to write (names become keys).
    groups
        Optional, aligned with ``frame``: rows sharing a value share a key set, from which the columns with
        no value anywhere in the group are left out (a lapsed customer's failure columns).

    Returns
    -------
    list
        The rows' JSON text, in the frame's order.
    """
    n = len(frame)
    if n == 0:
        return []
    texts = {name: _texts(frame[name]) for name in frame.columns}
    present = frame.notna()
    labels = np.zeros(n, dtype=np.int64) if groups is None else pd.factorize(groups, use_na_sentinel=False)[0]
    out: list[str | None] = [None] * n
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keys = [name for name in frame.columns if present[name].to_numpy()[rows].any()]
        if not keys:
            continue
        names = (orjson.dumps(str(k)).decode().replace("%", "%%") for k in keys)
        template = "{" + ",".join(f"{name}:%s" for name in names) + "}"
        whole = len(rows) == n
        picked = [(texts[k] if whole else texts[k][rows]).tolist() for k in keys]
        made = [template % values for values in zip(*picked, strict=True)]
        if whole:
            return made  # type: ignore[return-value]
        for i, text in zip(rows.tolist(), made, strict=True):
            out[i] = text
    return out
