"""Which message or offer variant works best? Return rate and revenue per customer, compared with a trustworthy winner.

The variants a campaign declares per segment are drawn at random among its contacted customers, so their
treated customers are comparable. Within each segment every pair of variants is compared, on the return
rate (difference of two proportions: two-sided z-test, Newcombe interval) and on revenue per customer
(Welch's t-test and interval). Testing several pairs and two measures finds a "winner" by chance far more
often than 5 % of the time, so within each (segment, measure):

* the p-values are adjusted by Holm's step-down method (Holm 1979), which holds the family-wise error rate
  at 5 % and is never less powerful than Bonferroni's;
* the intervals are Bonferroni-adjusted (each at 1 − 0.05 / m for m comparisons), simultaneous intervals.

A variant wins on a measure only when it beats every other variant of its segment with a Holm-adjusted
p-value below 0.05; until then the report says "no winner yet".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import scipy.stats as sps
from sqlalchemy import Connection

from winback.reports.stats import newcombe_interval, welch_interval, wilson_interval
from winback.warehouse.uplift_history import scored_arms

MEASURES = ("return rate", "revenue per customer")


def fmt_p(p: float) -> str:
    """A p-value as the report prints it: three decimals, or `< 0.001`."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


@dataclass(frozen=True)
class VariantComparison:
    """Per variant: size, return rate and revenue with intervals; per pair and measure: the adjusted test."""

    variants: pd.DataFrame
    pairs: pd.DataFrame
    verdicts: list[str] = field(default_factory=list)
    confidence: float = 0.95


def _summary(part: pd.DataFrame, confidence: float) -> dict[str, float]:
    n = len(part)
    returned = float(part["returned"].sum())
    low, high = wilson_interval(returned, n, confidence=confidence)
    revenue = part["revenue"].to_numpy(dtype=float)
    mean = float(revenue.mean()) if n else float("nan")
    var = float(revenue.var(ddof=1)) if n > 1 else float("nan")
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * np.sqrt(var / n)) if n > 1 else float("nan")
    return {"n": n, "returned": int(returned), "return_rate": returned / n if n else float("nan"),
            "return_rate_low": float(low), "return_rate_high": float(high), "revenue_per_customer": mean,
            "revenue_low": mean - half, "revenue_high": mean + half, "_var": var}  # fmt: skip


def _pair(a: dict[str, float], b: dict[str, float], measure: str, confidence: float) -> tuple[float, ...]:
    """Difference a − b, its (adjusted) interval and the two-sided p-value."""
    if measure == "return rate":
        x1, n1, x2, n2 = a["returned"], a["n"], b["returned"], b["n"]
        low, high = newcombe_interval(x1, n1, x2, n2, confidence=confidence)
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        diff = x1 / n1 - x2 / n2
        p = 2 * sps.norm.sf(abs(diff) / se) if se > 0 else (1.0 if diff == 0 else 0.0)
        return diff, float(low), float(high), float(p)
    m1, v1, n1 = a["revenue_per_customer"], a["_var"], a["n"]
    m2, v2, n2 = b["revenue_per_customer"], b["_var"], b["n"]
    low, high, _, _ = welch_interval(m1, v1, n1, m2, v2, n2, confidence=confidence)
    test = sps.ttest_ind_from_stats(m1, np.sqrt(v1), n1, m2, np.sqrt(v2), n2, equal_var=False)
    p = float(test.pvalue) if np.isfinite(test.pvalue) else 1.0
    return m1 - m2, float(low), float(high), p


def _verdict(segment: str, measure: str, pairs: pd.DataFrame, names: list[str], alpha: float) -> str:
    """'lapsed, return rate: B wins …' or '… no winner yet …'."""
    for name in names:
        won = pairs.loc[(pairs["better"] == name) & pairs["significant"]]
        if len(won) == len(names) - 1:
            worst = won.loc[won["p_holm"].idxmax()]
            bound = fmt_p(worst["p_holm"]).replace("< ", "")
            return (f"{segment}, {measure}: {name} wins (against every other variant, Holm-adjusted p "
                    f"{'<' if worst['p_holm'] < 0.001 else '≤'} {bound})")  # fmt: skip
    family = len(pairs)
    return (f"{segment}, {measure}: no winner yet ({family} comparison{'s' if family > 1 else ''}, Holm-adjusted, "
            f"none significant at {alpha:.0%} for one variant against all the others)")  # fmt: skip


def compare_variants(treated: pd.DataFrame, confidence: float = 0.95) -> VariantComparison | None:
    """Compare the variants of each segment among its treated customers; None when the run drew no variants.

    Parameters
    ----------
    treated
        One row per treated customer: segment, variant (None: no variant), returned (bool), revenue.
    """
    drawn = treated.loc[treated["variant"].notna()]
    if drawn.empty:
        return None
    alpha = 1.0 - confidence
    rows, pair_rows, verdicts = [], [], []
    for segment, part in drawn.groupby("segment", sort=True):
        names = sorted(part["variant"].unique())
        stats = {name: _summary(part.loc[part["variant"] == name], confidence) for name in names}
        rows += [{"segment": segment, "variant": name, **{k: v for k, v in s.items() if k != "_var"}}
                 for name, s in stats.items()]  # fmt: skip
        m = max(len(names) * (len(names) - 1) // 2, 1)
        for measure in MEASURES:
            found = []
            for a, b in combinations(names, 2):
                diff, low, high, p = _pair(stats[a], stats[b], measure, 1.0 - alpha / m)
                better, worse = (a, b) if diff >= 0 else (b, a)
                low, high = (low, high) if diff >= 0 else (-high, -low)
                found.append({"segment": segment, "measure": measure, "better": better, "worse": worse,
                              "difference": abs(diff), "low": low, "high": high, "p_value": p})  # fmt: skip
            family = pd.DataFrame(found)
            if family.empty:
                continue
            family["p_holm"] = holm(family["p_value"].to_numpy())
            family["significant"] = family["p_holm"] < alpha
            pair_rows.append(family)
            verdicts.append(_verdict(str(segment), measure, family, names, alpha))
    pairs = pd.concat(pair_rows, ignore_index=True) if pair_rows else pd.DataFrame()
    return VariantComparison(pd.DataFrame(rows), pairs, verdicts, confidence)


def variant_comparison(conn: Connection, run_id: int, confidence: float = 0.95) -> VariantComparison | None:
    """The run's variants compared on its treated customers (None when it drew none)."""
    arms = scored_arms(conn, [run_id])
    return compare_variants(arms.loc[arms["arm"] == "treatment"], confidence)
