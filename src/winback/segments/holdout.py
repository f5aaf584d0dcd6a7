"""The random holdout: deterministic, so a re-run makes the same split, and stratified by segment.

A campaign splits a whole run at once (`assign_holdout`), drawn afresh for each run (`run_key`); a service
recovery decides one customer per event (`held_out`). Both draw a per-(key, customer) number, `hash_unit`.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

HASH_CHUNK = 100_000  # customers hashed per pass


def hash_unit(campaign_id: str, customer_ids: pd.Series) -> np.ndarray:
    """A uniform number in [0, 1) per customer, fixed for a (campaign, customer) pair.

    The first 8 bytes of blake2b(campaign:customer) as a big-endian integer over 2^64; the digests are
    read as one buffer, so only the hashing itself runs per customer.
    """
    prefix = f"{campaign_id}:"
    ids = customer_ids.astype(str)
    out = np.empty(len(ids), dtype="float64")
    for start in range(0, len(ids), HASH_CHUNK):  # a chunk's digests at a time: a run's are ~50 bytes each
        digests = b"".join(
            hashlib.blake2b((prefix + cid).encode(), digest_size=8).digest()
            for cid in ids.iloc[start : start + HASH_CHUNK].tolist()
        )
        out[start : start + HASH_CHUNK] = np.frombuffer(digests, dtype=">u8").astype("float64") / 2.0**64
    return out


def id_ranks(customer_ids: pd.Series) -> np.ndarray:
    """Each id's place in the ids' sorted order (as text): what ties are broken by, 8 bytes a customer.

    Sorting the ids themselves as fixed-width text would cost 4 bytes per character of the longest id for
    every customer (1.4 GiB for 10M UUIDs).
    """
    ranks = np.empty(len(customer_ids), dtype=np.int64)
    ranks[np.argsort(customer_ids.astype(str).to_numpy(dtype=object), kind="stable")] = np.arange(len(customer_ids))
    return ranks


def run_key(campaign_id: str, as_of: dt.datetime) -> str:
    """The key a campaign run draws its holdout with: the campaign and the run's as-of.

    A fresh draw per run: were the same customers held out run after run, everything they did since (fewer
    contacts, fewer recent orders) would differ between the arms, and an uplift model comparing treated and
    held-out customers with the same features would compare unlike with unlike. A re-run of the same run
    (same as-of) draws the same split.
    """
    return f"{campaign_id}@{as_of.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S}"


def assign_holdout(campaign_id: str, customers: pd.DataFrame, share: float, strata: str = "segment") -> pd.Series:
    """True for customers held out: within each stratum, the `share` with the lowest hash.

    Ranking by hash inside each stratum holds out exactly round(share × n) per segment (not merely in
    expectation), which keeps per-segment lift estimable even for small segments. Equal hashes rank by
    customer id, so the split does not depend on the order the customers come in (a partitioned run
    gathers them in another order than one process).
    """
    if customers.empty:
        return pd.Series(dtype=bool)
    stratum, _ = pd.factorize(customers[strata], use_na_sentinel=True)
    ids = id_ranks(customers["customer_id"])
    order = np.lexsort((ids, hash_unit(campaign_id, customers["customer_id"]), stratum))  # by stratum, hash, id
    sorted_strata = stratum[order]
    first = np.searchsorted(sorted_strata, sorted_strata, side="left")
    size = np.searchsorted(sorted_strata, sorted_strata, side="right") - first
    rank = np.arange(1, len(order) + 1) - first  # 1 for the lowest hash of each stratum
    held = np.zeros(len(order), dtype=bool)
    held[order] = (rank <= np.round(size * share)) & (sorted_strata >= 0)  # no stratum: never held out
    return pd.Series(held, index=customers.index)


def held_out(campaign_id: str, customer_id: str, share: float) -> bool:
    """Whether one customer, decided alone, falls in the holdout: their hash is below `share`.

    A recovery decides per CRM event, so there is no stratum to rank within: each customer is held out
    with probability `share`, and the same customer always draws the same way for the same campaign.

    Parameters
    ----------
    campaign_id
        The campaign the split belongs to (a different campaign draws independently).
    customer_id
        The customer being decided.
    share
        The holdout share, in [0, 1).

    Returns
    -------
    bool
        True when the customer is held out.
    """
    return bool(hash_unit(campaign_id, pd.Series([customer_id]))[0] < share)
