"""Message and offer variants: each contacted customer of a segment gets one of its variants, at random.

The holdout is drawn first, among everyone worth contacting; the variants are then drawn among the rest by
a hash of the run's key and the customer (`holdout.hash_unit`, salted apart from the holdout's), so a re-run
draws the same and the draw is independent of the holdout's. A variant may change the subject, the template
and the offer's value (the policy's caps still apply).

Who is contacted must not depend on the variant drawn, or the variants would be compared on different
customers: the budget is walked with each customer's most expensive variant, so the run never spends more
than its budget whatever is drawn, and the customers it reaches are the same whichever variant they get.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy, reprice_offers
from winback.segments.holdout import hash_unit

SALT = ":variant"


def draw_variants(key: str, customers: pd.DataFrame, config: CampaignConfig) -> pd.Series:
    """The variant name of each customer whose segment declares variants (None for the others).

    Parameters
    ----------
    key
        The run's holdout key (`holdout.run_key`); the variants draw with it plus :data:`SALT`.
    customers
        customer_id and segment of the customers to draw for (the contacted, not the held out).
    """
    out = pd.Series(None, index=customers.index, dtype=object)
    if customers.empty:
        return out
    u = pd.Series(hash_unit(key + SALT, customers["customer_id"]), index=customers.index)
    for segment, variants in config.variants.items():
        rows = customers["segment"] == segment
        if rows.any():
            names = np.array([v.name for v in variants], dtype=object)
            pick = np.minimum((u[rows].to_numpy() * len(names)).astype(int), len(names) - 1)
            out[rows] = names[pick]
    return out


def variant_offers(
    priced: pd.DataFrame, variant: pd.Series, config: CampaignConfig, policy: CompensationPolicy
) -> tuple[pd.DataFrame, pd.Series]:
    """The offers with each drawn variant's value, and the cost to walk the budget with (the dearest variant's).

    Returns
    -------
    (DataFrame, Series)
        ``priced`` with the drawn variants' offers applied; each row's most expensive variant's offer cost
        (its own cost where its segment has no variant with an offer value).
    """
    rate = config.economics.redemption_rate
    walk = priced["offer_cost"].astype(float)
    value = pd.Series(np.nan, index=priced.index)
    for segment, variants in config.variants.items():
        rows = (priced["segment"] == segment).to_numpy()
        for v in variants:
            if v.offer_value is None:
                continue
            cost = reprice_offers(priced.loc[rows], pd.Series(v.offer_value, index=priced.index[rows]), policy, rate)
            walk[rows] = np.maximum(walk[rows], cost["offer_cost"].astype(float))
            value[rows & (variant == v.name).to_numpy()] = v.offer_value
    return reprice_offers(priced, value, policy, rate), walk
