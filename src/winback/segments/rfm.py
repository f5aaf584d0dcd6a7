"""Per-customer RFM summary (frequency, recency, T, monetary value) from raw transactions.

The input the BG/NBD and Gamma-Gamma models need, built the way pymc-marketing / lifetimes build
it, so numbers can be compared with theirs and with the literature:

* Purchases are first aggregated to distinct ``freq`` periods (several orders on one day count as
  one purchase when ``freq="D"``; their values are summed).
* ``frequency`` = number of distinct purchase periods minus one (repeat purchases).
* ``recency`` = last purchase period - first purchase period; ``T`` = observation end period -
  first purchase period; both expressed in ``time_unit``.
* ``monetary_value`` = mean of the REPEAT purchase periods' sums (first purchase excluded), 0 when
  frequency is 0: the Gamma-Gamma model's z-bar.

``time_unit`` (default: ``freq``) separates *counting* from *measuring*: the published CDNOW
results (Fader, Hardie & Lee 2005) count repeat purchases on distinct DAYS and measure recency
and T in WEEKS, i.e. ``freq="D", time_unit="W"`` (days / 7); with that, this summary reproduces
the paper's 2,357-customer table exactly and the models reproduce its parameters.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
from pandas.tseries.offsets import BaseOffset, Day, Tick, Week

DateLike = str | date | datetime | pd.Timestamp


def _require_columns(transactions: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in transactions.columns]
    if missing:
        raise ValueError(f"column {missing[0]!r} not found in transactions (columns: {list(transactions.columns)})")


def _parse_dates(values: pd.Series, column: str) -> pd.Series:
    """Parse a date column; unparseable or missing values are an error that names the rows.

    Fast path: one inferred format for the whole column. Rows that do not fit it (say a mix of
    "2024-01-01" and "2024-01-01 17:00") are retried one by one. Whole numbers are read as
    YYYYMMDD (as in the raw CDNOW file) rather than as nanoseconds since 1970.
    """
    if pd.api.types.is_integer_dtype(values.dtype):
        parsed = pd.to_datetime(values.astype(str), errors="coerce", format="%Y%m%d")
    else:
        parsed = pd.to_datetime(values, errors="coerce")
        retry = (parsed.isna() & values.notna()).to_numpy()
        if retry.any():
            again = pd.to_datetime(values[retry], errors="coerce", format="mixed")
            parsed[retry] = again
    bad = parsed.isna().to_numpy()
    if bad.any():
        positions = np.flatnonzero(bad)
        examples = ", ".join(f"row {i}: {values.iloc[i]!r}" for i in positions[:3])
        raise ValueError(f"could not parse {bad.sum()} values in date column {column!r} ({examples})")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _parse_amounts(values: pd.Series, column: str) -> pd.Series:
    amounts = pd.to_numeric(values, errors="coerce")
    bad = amounts.isna().to_numpy() | ~np.isfinite(amounts.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        positions = np.flatnonzero(bad)
        examples = ", ".join(f"row {i}: {values.iloc[i]!r}" for i in positions[:3])
        raise ValueError(f"{bad.sum()} non-numeric values in amount column {column!r} ({examples})")
    return amounts.astype(float)


def _parse_end(value: DateLike, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} is not a date: {value!r}") from exc
    if pd.isna(stamp):
        raise ValueError(f"{name} is not a date: {value!r}")
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def _period_offset(freq: str) -> BaseOffset:
    try:
        return pd.Period("2001-01-01", freq=freq).freq
    except (ValueError, TypeError) as exc:
        raise ValueError(f"freq/time_unit {freq!r} is not a pandas period alias such as 'D', 'W', 'M'") from exc


def _fixed_length(freq: str) -> pd.Timedelta:
    offset = _period_offset(freq)
    if isinstance(offset, Week):
        return pd.Timedelta(days=7 * offset.n)
    if isinstance(offset, Day | Tick):
        return pd.Timedelta(offset)
    raise ValueError(
        f"period {freq!r} has no fixed length; time_unit can differ from freq only for "
        "fixed-length periods such as 'D', 'W' or 'h'"
    )


def unit_scale(freq: str, time_unit: str | None) -> float:
    """How many ``time_unit`` one ``freq`` period is (1.0 when time_unit is None or equal)."""
    if time_unit is None or _period_offset(time_unit) == _period_offset(freq):
        return 1.0
    return _fixed_length(freq) / _fixed_length(time_unit)


def _period_ordinals(dates: pd.Series, freq: str) -> np.ndarray:
    return dates.dt.to_period(freq).array.asi8.astype(np.int64)


def _end_ordinal(stamp: pd.Timestamp, freq: str) -> int:
    return int(pd.Period(stamp, freq=freq).ordinal)


def rfm_summary(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    *,
    observation_period_end: DateLike,
    freq: str = "W",
    time_unit: str | None = None,
    calibration_period_end: DateLike | None = None,
) -> pd.DataFrame:
    """One row per customer: customer_id, frequency, recency, T[, monetary_value][, holdout].

    Parameters
    ----------
    transactions
        One row per order; extra columns are ignored.
    customer_id_col, datetime_col, monetary_value_col
        Column names; dates may be strings or datetimes, amounts strings or numbers.
    observation_period_end
        Last day observed; later transactions are ignored. Inclusive (the period containing it
        counts).
    freq
        Pandas period alias used to count purchases ('D', 'W', 'M', ...).
    time_unit
        Unit of recency, T and duration_holdout; ``freq`` when None. Must be fixed-length when it
        differs from freq (e.g. ``freq="D", time_unit="W"`` for the CDNOW convention).
    calibration_period_end
        When given, frequency/recency/T/monetary_value describe the calibration window (up to and
        including this date) and ``frequency_holdout``, ``monetary_value_holdout`` (mean per-period
        sum, 0 when none) and ``duration_holdout`` describe the rest; customers first seen after
        it are left out, as they cannot be scored from the calibration window.

    Returns
    -------
    pandas.DataFrame
        Sorted by customer_id, default RangeIndex.
    """
    columns = [customer_id_col, datetime_col] + ([monetary_value_col] if monetary_value_col else [])
    _require_columns(transactions, columns)
    obs_end = _parse_end(observation_period_end, "observation_period_end")
    cal_end = None
    if calibration_period_end is not None:
        cal_end = _parse_end(calibration_period_end, "calibration_period_end")
        if cal_end >= obs_end:
            raise ValueError(
                f"calibration_period_end {cal_end.date()} must be before observation_period_end {obs_end.date()}"
            )
    scale = unit_scale(freq, time_unit)

    ids = transactions[customer_id_col]
    missing_ids = ids.isna().to_numpy()
    if missing_ids.any():
        raise ValueError(
            f"{missing_ids.sum()} rows have no {customer_id_col!r}, first row {int(np.flatnonzero(missing_ids)[0])}"
        )
    frame = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "period": _period_ordinals(_parse_dates(transactions[datetime_col], datetime_col), freq),
            "amount": (
                _parse_amounts(transactions[monetary_value_col], monetary_value_col).to_numpy()
                if monetary_value_col
                else 0.0
            ),
        }
    )
    obs_ord = _end_ordinal(obs_end, freq)
    frame = frame[frame["period"] <= obs_ord]
    # Several orders in one period are one purchase, worth their sum.
    periods = frame.groupby(["customer_id", "period"], sort=True, as_index=False)["amount"].sum()

    end_ord = obs_ord if cal_end is None else _end_ordinal(cal_end, freq)
    cal = periods[periods["period"] <= end_ord]
    summary = _summarise(cal, end_ord, scale, with_money=monetary_value_col is not None)
    if cal_end is not None:
        hold = periods[periods["period"] > end_ord]
        hold = hold[hold["customer_id"].isin(summary["customer_id"])]
        grouped = hold.groupby("customer_id")["amount"]
        counts = grouped.size()
        summary["frequency_holdout"] = summary["customer_id"].map(counts).fillna(0).astype(np.int64).to_numpy()
        if monetary_value_col is not None:
            summary["monetary_value_holdout"] = summary["customer_id"].map(grouped.mean()).fillna(0.0).to_numpy()
        summary["duration_holdout"] = float((obs_ord - end_ord) * scale)
    return summary


def _summarise(periods: pd.DataFrame, end_ord: int, scale: float, *, with_money: bool) -> pd.DataFrame:
    """Calibration-window columns from distinct (customer, period, amount) rows sorted by period."""
    grouped = periods.groupby("customer_id", sort=True)
    first = grouped["period"].min()
    last = grouped["period"].max()
    count = grouped.size()
    out = pd.DataFrame(
        {
            "customer_id": first.index.to_numpy(),
            "frequency": (count - 1).to_numpy(dtype=np.int64),
            "recency": ((last - first) * scale).to_numpy(dtype=float),
            "T": ((end_ord - first) * scale).to_numpy(dtype=float),
        }
    )
    if with_money:
        # Mean of the repeat periods' sums; the first purchase period is left out.
        repeat = periods[grouped.cumcount().to_numpy() > 0]
        mean_repeat = repeat.groupby("customer_id", sort=True)["amount"].mean()
        out["monetary_value"] = mean_repeat.reindex(first.index, fill_value=0.0).to_numpy(dtype=float)
    return out
