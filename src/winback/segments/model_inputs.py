"""What the customer-base models take of each customer, and whom they cannot take.

Apart from the models (segments.scoring, with SciPy): a partitioned run's flow gathers these for every
partition as it arrives (stages.gathered), and the module that holds it is loaded on every Dask worker.
"""

from __future__ import annotations

import pandas as pd

# what the fit needs of each customer (days): all a partitioned run gathers for it, 32 bytes a customer
MODEL_INPUTS = ["frequency", "recency", "T", "mean_spend"]


def spend_problems(rfm: pd.DataFrame) -> pd.Series:
    """The repeat buyers whose mean order value is not above zero: Gamma-Gamma cannot take them."""
    bad = (rfm["frequency"] > 0) & ~(rfm["mean_spend"] > 0)
    return rfm.loc[bad, "customer_id"]
