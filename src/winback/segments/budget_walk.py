"""The run-wide part of a decision: who is held out, the order the budget is walked in, and who fits.

Everything else about a decision is worked out customer by customer (`segments.decision`), so a large run
can decide its partitions apart; these three steps look at every eligible customer of the run at once, on
a few numbers each (`WALK_COLUMNS`). Each has an explicit order, so gathering the same customers from any
number of partitions, in any order, selects the same ones:

- the holdout ranks customers by their hash within each segment, then by customer id;
- the walk goes by expected gain per unit of cost, highest first, then by customer id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from winback.segments.holdout import assign_holdout, id_ranks

# what each eligible customer brings to the run-wide step
WALK_COLUMNS = ["customer_id", "segment", "ratio", "walk_cost"]
WALK_CHUNK = 100_000  # customers walked per pass


def spend_budget(costs: np.ndarray, held_out: np.ndarray, budget: float) -> np.ndarray:
    """Greedy over customers already ranked by value per cost: take each one whose offer still fits.

    A customer who does not fit is skipped and the walk goes on, so cheaper offers (and plain messages,
    which cost nothing) further down still get their chance. Held-out customers are selected by the same
    rule, whether their offer would have fitted at that point, but spend nothing: the holdout stays
    comparable with the treated without taking budget from them.
    """
    remaining = budget + 1e-9
    chosen = np.zeros(len(costs), dtype=bool)
    for start in range(0, len(costs), WALK_CHUNK):  # Python numbers for a chunk at a time: 32 bytes each
        part = slice(start, start + WALK_CHUNK)
        for i, (cost, held) in enumerate(zip(costs[part].tolist(), held_out[part].tolist(), strict=True), start):
            if cost <= remaining:
                chosen[i] = True
                if not held:
                    remaining -= cost
    return chosen


def walk_positions(walk: pd.DataFrame) -> np.ndarray:
    """The positions of `walk`'s rows in the order the budget is spent: gain per cost, then customer id."""
    return np.lexsort((id_ranks(walk["customer_id"]), -walk["ratio"].to_numpy(dtype=float)))


def select_within_budget(walk: pd.DataFrame, holdout_key: str, holdout_share: float, budget: float) -> pd.DataFrame:
    """For every eligible customer of the run: held out, within the budget, and rank in the walk.

    Parameters
    ----------
    walk
        One row per eligible customer, WALK_COLUMNS, from one frame or gathered from many; its index is
        kept, so each part can take its own rows back.
    holdout_key
        What the holdout is drawn with (`holdout.run_key`).

    Returns
    -------
    DataFrame
        `walk`'s index, with held (bool), within (bool) and rank (1 for the first in the walk, of `len(walk)`).
    """
    held = assign_holdout(holdout_key, walk[["customer_id", "segment"]], holdout_share).to_numpy(dtype=bool)
    order = walk_positions(walk)
    within = np.zeros(len(walk), dtype=bool)
    within[order] = spend_budget(walk["walk_cost"].to_numpy(dtype=float)[order], held[order], budget)
    rank = np.empty(len(walk), dtype=float)
    rank[order] = np.arange(1, len(order) + 1, dtype=float)
    return pd.DataFrame({"held": held, "within": within, "rank": rank}, index=walk.index)
