"""Fit the customer-base models from a transaction table and check them on a holdout window.

Why: a BG/NBD fit always "succeeds"; whether it predicts this business's customers is a separate
question. The standard check (as in Fader, Hardie & Lee 2005) fits on a calibration window and
compares predicted with actual repeat purchases in the holdout window, overall and by calibration
frequency. Everything returned is plain JSON (str, int, float, bool, None, list, dict) so the CLI
(`winback models fit ... --json`) can print it as is.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from winback.segments.bgnbd import BgNbdFit, expected_purchases, fit_bgnbd
from winback.segments.gamma_gamma import GammaGammaFit, expected_spend, fit_gamma_gamma
from winback.segments.rfm import DateLike, rfm_summary

# Aggregate holdout error bands for the verdict.
GOOD_RELATIVE_ERROR = 0.10
FAIR_RELATIVE_ERROR = 0.25


def _gamma_gamma_report(summary: pd.DataFrame) -> tuple[dict[str, Any], GammaGammaFit | None]:
    """Gamma-Gamma parameters, or the reason there are none (the purchase model still stands)."""
    repeat = summary["frequency"].to_numpy() > 0
    try:
        fit = fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    except ValueError as exc:
        return {"error": str(exc)}, None
    out: dict[str, Any] = dict(fit.to_dict())
    out["population_mean_spend"] = float(fit.population_mean_spend)
    # The model assumes spend is independent of frequency; a strong correlation undermines it.
    freq_r = summary["frequency"].to_numpy()[repeat].astype(float)
    spend_r = summary["monetary_value"].to_numpy()[repeat]
    corr = np.corrcoef(freq_r, spend_r)[0, 1] if freq_r.std() > 0 and spend_r.std() > 0 else np.nan
    out["frequency_spend_correlation"] = None if np.isnan(corr) else float(corr)
    return out, fit


def _verdict(fit: BgNbdFit, total_predicted: float, total_actual: float) -> str:
    if not fit.converged:
        return "poor: the BG/NBD optimiser did not converge"
    if total_actual <= 0:
        return "unknown: no holdout purchases to compare with"
    rel = (total_predicted - total_actual) / total_actual
    text = f"predicted {total_predicted:.0f} holdout repeat purchases vs {total_actual:.0f} actual ({rel:+.1%})"
    if abs(rel) <= GOOD_RELATIVE_ERROR:
        return "good: " + text
    if abs(rel) <= FAIR_RELATIVE_ERROR:
        return "fair: " + text
    return "poor: " + text


def calibration_check(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    freq: str = "W",
    time_unit: str | None = None,
    max_frequency_bucket: int = 7,
) -> dict[str, Any]:
    """Fit on transactions up to ``calibration_end``; compare predictions over the holdout.

    Returns
    -------
    dict
        ``data`` (customer counts, windows), ``bgnbd`` (parameters, log-likelihood), optionally
        ``gamma_gamma``, and ``holdout``: mean and total predicted vs actual repeat purchases per
        customer, the mean absolute error per customer, the same by calibration frequency
        0..max_frequency_bucket-1 and "max_frequency_bucket+", and a one-line ``verdict``.
    """
    summary = rfm_summary(
        transactions,
        customer_id_col,
        datetime_col,
        monetary_value_col,
        observation_period_end=observation_end,
        freq=freq,
        time_unit=time_unit,
        calibration_period_end=calibration_end,
    )
    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy()
    age = summary["T"].to_numpy()
    fit = fit_bgnbd(x, t_x, age)
    duration = float(summary["duration_holdout"].iloc[0])
    predicted = expected_purchases(fit, duration, x, t_x, age)
    actual = summary["frequency_holdout"].to_numpy(dtype=float)

    bucket = np.minimum(x, max_frequency_bucket).astype(int)
    groups = []
    for k in range(max_frequency_bucket + 1):
        members = bucket == k
        if not members.any():
            continue
        groups.append(
            {
                "frequency": f"{k}+" if k == max_frequency_bucket else str(k),
                "n_customers": int(members.sum()),
                "mean_predicted": float(predicted[members].mean()),
                "mean_actual": float(actual[members].mean()),
            }
        )
    total_predicted = float(predicted.sum())
    total_actual = float(actual.sum())
    result: dict[str, Any] = {
        "data": {
            "n_customers": int(x.size),
            "n_repeat_buyers": int((x > 0).sum()),
            "freq": freq,
            "time_unit": time_unit or freq,
            "calibration_end": str(pd.Timestamp(calibration_end).date()),
            "observation_end": str(pd.Timestamp(observation_end).date()),
            "holdout_duration": duration,
        },
        "bgnbd": fit.to_dict(),
        "holdout": {
            "mean_predicted": float(predicted.mean()),
            "mean_actual": float(actual.mean()),
            "total_predicted": total_predicted,
            "total_actual": total_actual,
            "relative_error": (total_predicted - total_actual) / total_actual if total_actual > 0 else None,
            "mae": float(np.abs(predicted - actual).mean()),
            "by_calibration_frequency": groups,
        },
        "verdict": _verdict(fit, total_predicted, total_actual),
    }
    if monetary_value_col is not None:
        gg, gg_fit = _gamma_gamma_report(summary)
        if gg_fit is not None:
            # Spend check: shrunk calibration estimate vs the holdout average, holdout buyers only.
            buyers = actual > 0
            if buyers.any():
                spend = expected_spend(gg_fit, x, summary["monetary_value"].to_numpy())
                gg["holdout_mean_predicted_spend"] = float(spend[buyers].mean())
                gg["holdout_mean_actual_spend"] = float(summary["monetary_value_holdout"].to_numpy()[buyers].mean())
        result["gamma_gamma"] = gg
    return result


def fit_transactions_file(
    path: str | PathLike[str],
    customer_id_col: str,
    date_col: str,
    amount_col: str | None = None,
    calibration_end: DateLike | None = None,
    freq: str = "W",
    *,
    observation_end: DateLike | None = None,
    time_unit: str | None = None,
) -> dict[str, Any]:
    """Read a transactions CSV and return the JSON-able model report.

    Without ``calibration_end``: BG/NBD (and Gamma-Gamma when ``amount_col`` is given) fitted on
    all transactions up to ``observation_end`` (default: the last date in the file). With it: the
    :func:`calibration_check` report. Customer ids are read as strings so "0012" stays "0012".
    """
    frame = pd.read_csv(path, dtype={customer_id_col: str})
    if observation_end is None:
        if date_col not in frame.columns:
            raise ValueError(f"column {date_col!r} not found in {path} (columns: {list(frame.columns)})")
        observation_end = pd.to_datetime(frame[date_col], errors="coerce").max()
        if pd.isna(observation_end):
            raise ValueError(f"no parseable dates in column {date_col!r} of {path}")
    if calibration_end is not None:
        report = calibration_check(
            frame,
            customer_id_col,
            date_col,
            amount_col,
            calibration_end=calibration_end,
            observation_end=observation_end,
            freq=freq,
            time_unit=time_unit,
        )
    else:
        summary = rfm_summary(
            frame,
            customer_id_col,
            date_col,
            amount_col,
            observation_period_end=observation_end,
            freq=freq,
            time_unit=time_unit,
        )
        fit = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
        report = {
            "data": {
                "n_customers": len(summary),
                "n_repeat_buyers": int((summary["frequency"] > 0).sum()),
                "freq": freq,
                "time_unit": time_unit or freq,
                "observation_end": str(pd.Timestamp(observation_end).date()),
            },
            "bgnbd": fit.to_dict(),
        }
        if amount_col is not None:
            report["gamma_gamma"] = _gamma_gamma_report(summary)[0]
    report["data"]["source"] = str(path)
    return report
