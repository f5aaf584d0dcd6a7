"""What a decision knew about a customer, stored with it so that an uplift model can learn from past runs.

A model of "who responds to being contacted" is trained on earlier runs' treated and held-out customers. It
must see each of them as the decision did: anything measured later (the return itself, orders placed in the
window, a failure resolved afterwards) would leak the outcome into the features. So the features are taken
from the frame the decision was made on, at that moment, and stored with it (wb_decisions.features).

The decision's own columns (segment, offer, p_active, ...) are features already; the rest (:data:`STORED`)
goes into a JSON object per decision, serialised column by column when the decisions are stored
(`warehouse.json_rows`) and read back for a whole run at once by pandas (`features_frame`).
"""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd

# What a decision knew beyond its own columns (segment, failure category, severity, p_active, customer value,
# offer kind, value, amount and cost, channel are stored as columns already). Time-relative values are in
# days before the decision, never dates. A column the run does not have (no failures, no models) is left out.
STORED: tuple[str, ...] = (
    # the customer's orders and the customer-base models' scores (rfm, scoring)
    *("frequency", "recency", "T", "days_since_last", "mean_spend", "total_spend"),
    *("expected_orders", "expected_spend", "overdue_ratio"),
    # the failure behind an aggrieved customer's segment
    *("unresolved", "order_amount", "grievance", "failures", "days_since_failure", "days_to_resolve"),
    # where they are, and winback's own history with them, counted only from before the decision
    *("locale", "days_since_contact", "messages_30d", "past_contacts", "past_returns"),
)
# The decision's own columns that are features too (for a held-out customer, the offer they would have got).
DECISION_COLUMNS: tuple[str, ...] = (
    *("segment", "failure_category", "severity", "p_active", "customer_value", "channel"),
    *("offer_kind", "offer_value", "offer_amount", "offer_cost"),
)
COUNTRY_FROM_LOCALE = r"[_-]([A-Za-z]{2})$"


def country_of(locale: pd.Series) -> pd.Series:
    """'de_DE' → 'DE', 'en-GB' → 'GB'; missing where the locale names no country.

    Each distinct locale is read once (a million customers have a few dozen locales), not each row.
    """
    codes, uniques = pd.factorize(locale, use_na_sentinel=True)
    found = pd.Series(uniques, dtype="string").str.extract(COUNTRY_FROM_LOCALE, expand=False).str.upper()
    values = np.append(found.to_numpy(dtype=object, na_value=None), None)  # the last: a missing locale
    return pd.Series(values[np.where(codes < 0, len(found), codes)], index=locale.index, dtype="string")


def stored_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The :data:`STORED` columns the decision frame has, in the frame's order: what goes in ``features``."""
    return frame[[name for name in STORED if name in frame.columns]]


def features_kept(decisions: pd.DataFrame) -> pd.Series:
    """Whose features are stored: the decisions in an arm (treated or held out), the only ones a model learns from.

    A skipped customer was neither contacted nor drawn into the holdout, so no outcome of theirs measures an
    effect, and nothing reads their features back (`warehouse.uplift_history` joins the arms' returns). A
    third of a 1M run's decisions are skips: storing theirs took 0.4–2.1 s of the decisions' 11–14 s insert
    (bench/decisions_insert.py --features --skips 0.36; docs/benchmarks.md).
    """
    if "arm" not in decisions.columns:
        return pd.Series(False, index=decisions.index)
    return decisions["arm"].notna()


def model_frame(decisions: pd.DataFrame) -> pd.DataFrame:
    """The features an uplift model sees: the decision's own feature columns, the stored ones, and ``country``.

    ``decisions`` holds decision columns and/or stored features already parsed (:func:`features_frame`).
    """
    names = [n for n in (*DECISION_COLUMNS, *STORED) if n in decisions.columns and n != "locale"]
    out = decisions[names]  # copy-on-write: adding a column below never reaches `decisions`
    if "locale" in decisions.columns:
        out["country"] = country_of(decisions["locale"]).astype(object)
    return out


def features_frame(texts: pd.Series | list[str | None]) -> pd.DataFrame:
    """Stored features back as a frame, one row per text in order; a missing text gives an all-missing row."""
    values = pd.Series(texts, dtype=object).reset_index(drop=True)
    present = values.notna()
    if not present.any():
        return pd.DataFrame(index=values.index)
    parsed = pd.read_json(StringIO("\n".join(values[present].tolist())), lines=True, orient="records", dtype=False)
    parsed.index = values.index[present.to_numpy()]
    return parsed.reindex(values.index)
