"""The seasonal clock: order intensity over the year, week and day, per time zone, and sign-up times."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from winback.app.demo_data.parameters import HOUR_FACTOR, MONTH_FACTOR, SIGNUP_GROWTH, WEEKDAY_FACTOR, ZONES

US_PER_DAY = 86_400_000_000
NULL_TS = np.iinfo(np.int64).min  # marks a NULL timestamp inside an int64 µs array


@dataclass(frozen=True)
class Clock:
    """Days since the history start, the seasonal warp per zone, and the sign-up distribution per zone.

    `warp[z]` is the cumulative order intensity Λ_z(t) on an hourly grid (normalised so Λ grows by one per
    day on average); a Poisson process with rate λ in Λ-time is a seasonal process with mean rate λ.
    """

    t0_us: int
    horizon: float
    grid: np.ndarray
    warp: tuple[np.ndarray, ...]
    signup_cdf: tuple[np.ndarray, ...]


def _black_friday_window(local: pd.DatetimeIndex) -> np.ndarray:
    """Friday after the fourth Thursday of November through Cyber Monday."""
    days = local.normalize().tz_localize(None)
    out = np.zeros(len(local), dtype=bool)
    for year in np.unique(local.year):
        nov1 = dt.date(int(year), 11, 1)
        first_thursday = 1 + (3 - nov1.weekday()) % 7
        start = pd.Timestamp(int(year), 11, first_thursday + 22)
        out |= np.asarray((days >= start) & (days <= start + pd.Timedelta(days=3)))
    return out


def _intensity(local: pd.DatetimeIndex) -> np.ndarray:
    """Relative order intensity at local times: months, Black Friday, Christmas, weekday and hour."""
    month = np.asarray(local.month) - 1
    day = np.asarray(local.day)
    s = MONTH_FACTOR[month] * WEEKDAY_FACTOR[np.asarray(local.day_of_week)] * HOUR_FACTOR[np.asarray(local.hour)]
    s = s * np.where(_black_friday_window(local), 2.0, 1.0)
    december = month == 11
    s = s * np.where(december & (day == 24), 0.7, 1.0) * np.where(december & (day == 25), 0.35, 1.0)
    return s / s.mean()


def build_clock(as_of: dt.datetime, history_days: int) -> Clock:
    """Hourly grid over the history with each zone's seasonal warp and sign-up CDF."""
    t0 = as_of - dt.timedelta(days=history_days)
    hours = history_days * 24
    grid = np.arange(hours + 1) / 24.0
    utc = pd.date_range(start=pd.Timestamp(t0), periods=hours + 1, freq="h")
    warps, cdfs = [], []
    growth = np.exp(SIGNUP_GROWTH * grid[:-2] / history_days)
    for zone in ZONES:
        s = _intensity(utc.tz_convert(zone.tz))
        warps.append(np.concatenate([[0.0], np.cumsum(s[:-1]) / 24.0]))
        w = s[:-2] * growth  # sign-ups end an hour before as_of
        cdfs.append(np.concatenate([[0.0], np.cumsum(w)]) / w.sum())
    t0_us = (t0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return Clock(int(t0_us), float(history_days), grid, tuple(warps), tuple(cdfs))


def to_us(clock: Clock, days: np.ndarray) -> np.ndarray:
    """Days since the history start → int64 µs since the epoch."""
    return clock.t0_us + np.rint(days * US_PER_DAY).astype(np.int64)
