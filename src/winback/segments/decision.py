"""Who gets contacted, who is held out, who is skipped, and why, in words and numbers.

expected gain = lift × customer value × h + spend uplift × margin − expected offer cost − contact cost,
for the offer and for the message alone

The lift is the uplift model's prediction for this customer and option, where the run's model decides for
that offer kind, else the per-offer-kind lift (see `segments.option_lifts`); a customer the model expects a
message to push away is skipped, and says so. The spend uplift (what the message adds to spend inside the
attribution window) and h (the share of the CLV horizon after that window) apply where the model and its
spend model decide; elsewhere the spend uplift is 0 and h = 1 (docs/models.md).

The policy's offer competes with the plain message (no compensation): whichever has the higher
expected gain is chosen, so an offer is only made where it pays for itself. An aggrieved customer is
owed the apology whatever they are worth (service recovery acknowledges every failure); only the
compensation has to pay for itself.

Exclusions come first and each names itself; then the offer is priced; then a deterministic holdout is
drawn per segment among the eligible; then the budget is spent greedily by expected gain per unit of
cost, skipping any offer that no longer fits (the classic knapsack heuristic: within one item of the
optimum when costs are small against the budget, as they are for coupons).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from babel.numbers import get_currency_symbol

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy, price_offers
from winback.segments.decision_features import STORED
from winback.segments.holdout import assign_holdout
from winback.segments.option_lifts import option_lifts
from winback.segments.reasons import exclusions, reasons
from winback.segments.uplift.decision_model import DecisionUplift
from winback.segments.variants import draw_variants, variant_offers

DECISION_COLUMNS = [
    "customer_id",
    "segment",
    "action",
    "arm",
    "failure_id",
    "failure_category",
    "severity",
    "p_active",
    "customer_value",
    "expected_gain",
    "offer_cost",
    "offer_kind",
    "offer_value",
    "offer_amount",
    "channel",
    "reason",
    "last_order_at",
    "predicted_uplift",
    "predicted_spend_uplift",
    "variant",
]


def last_order_times(last_day: pd.Series | None, length: int) -> pd.Series:
    """Epoch days (as the summaries give them) as UTC times to the millisecond, SQLite's julianday precision."""
    if last_day is None:
        return pd.Series(pd.NaT, index=range(length), dtype="datetime64[ms, UTC]")
    millis = (last_day.astype(float) * 86_400_000).round()
    return pd.to_datetime(millis, unit="ms", utc=True).astype("datetime64[ms, UTC]")


def spend_budget(costs: np.ndarray, held_out: np.ndarray, budget: float) -> np.ndarray:
    """Greedy over customers already ranked by value per cost: take each one whose offer still fits.

    A customer who does not fit is skipped and the walk goes on, so cheaper offers (and plain messages,
    which cost nothing) further down still get their chance. Held-out customers are selected by the same
    rule, whether their offer would have fitted at that point, but spend nothing: the holdout stays
    comparable with the treated without taking budget from them.
    """
    remaining = budget + 1e-9
    chosen = np.zeros(len(costs), dtype=bool)
    for i, (cost, held) in enumerate(zip(costs.tolist(), held_out.tolist(), strict=True)):
        if cost <= remaining:
            chosen[i] = True
            if not held:
                remaining -= cost
    return chosen


def decide(
    candidates: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    uplift: DecisionUplift | None = None,
    holdout_key: str | None = None,
) -> pd.DataFrame:
    """Decide every candidate; returns DECISION_COLUMNS, one row per candidate.

    Parameters
    ----------
    candidates
        One row per customer in a segment, with: customer_id, segment, failure_id, failure_category,
        severity, unresolved, order_amount, p_active, customer_value, mean_spend, do_not_contact,
        fraud_flag, channel, channel_reason, days_since_contact, messages_30d, returned_since_failure.
    uplift
        The run's uplift model: its predicted uplift replaces the per-offer-kind lift for the offer kinds it
        decides for (`option_lifts`); None decides on the per-offer-kind lift alone.
    holdout_key
        What the holdout is drawn with (`holdout.run_key`: a fresh draw per run); default the campaign id.
    """
    econ = config.economics
    symbol = get_currency_symbol(config.currency, locale="en")
    frame = candidates.reset_index(drop=True)  # pandas copy-on-write: our edits never reach the caller
    frame["exclusion"] = pd.Series(exclusions(frame, config), index=frame.index, dtype=object)
    frame = price_offers(frame, policy, econ.redemption_rate)
    contact_cost = frame["channel"].map(econ.contact_cost).fillna(0.0).astype(float)
    lifts = option_lifts(frame, econ.lift_prior, uplift, frame["exclusion"].isna().to_numpy())
    remaining = max(0.0, 1.0 - config.attribution_days / econ.horizon_days)
    offer_value, plain_value = lifts.values(frame["customer_value"], econ.margin, remaining)
    gain = offer_value - frame["offer_cost"] - contact_cost
    # the same message without compensation is always an option: keep the offer only when it pays more
    plain_gain = plain_value - contact_cost
    aggrieved = frame["segment"] == "aggrieved"
    # an aggrieved customer is owed the apology whatever they are worth; only compensation must pay
    plain = (plain_gain > gain) | (aggrieved & (gain <= econ.min_expected_gain))
    frame.loc[plain, "offer_kind"] = "none"
    frame.loc[plain, ["offer_value", "offer_amount", "offer_cost"]] = 0.0
    frame["expected_gain"] = np.where(plain, plain_gain, gain).round(2)
    cost = frame["offer_cost"] + contact_cost

    owed = aggrieved & (frame["expected_gain"] <= econ.min_expected_gain)
    eligible = frame["exclusion"].isna() & ((frame["expected_gain"] > econ.min_expected_gain) | aggrieved)
    holdout = pd.Series(False, index=frame.index)
    key = holdout_key or config.campaign_id
    holdout[eligible] = assign_holdout(key, frame.loc[eligible, ["customer_id", "segment"]], config.holdout_share)
    ratio = frame["expected_gain"] / cost.clip(lower=0.01)
    # message/offer variants, drawn after the holdout among the rest; the budget is walked in the same order
    # with each customer's dearest variant, so who is reached does not depend on the variant drawn
    frame["variant"] = None
    walk_cost = frame["offer_cost"]
    if config.variants:
        drawn = eligible & ~holdout
        frame.loc[drawn, "variant"] = draw_variants(key, frame.loc[drawn, ["customer_id", "segment"]], config)
        before = frame["offer_cost"]
        frame, walk_cost = variant_offers(frame, frame["variant"], config, policy)
        changed = frame["offer_cost"] != before
        frame.loc[changed, "expected_gain"] = (offer_value - frame["offer_cost"] - contact_cost)[changed].round(2)

    order = ratio[eligible].sort_values(ascending=False, kind="stable").index
    within = pd.Series(False, index=frame.index)
    within[order] = spend_budget(
        walk_cost[order].to_numpy(dtype=float),
        holdout[order].to_numpy(dtype=bool),
        config.budget,
    )
    rank = pd.Series(np.nan, index=frame.index)
    rank[order] = np.arange(1, len(order) + 1)
    # past the budget, an aggrieved customer still gets the apology, without compensation
    unfunded = eligible & ~within & aggrieved
    frame.loc[unfunded, "offer_kind"] = "none"
    frame.loc[unfunded, ["offer_value", "offer_amount", "offer_cost"]] = 0.0
    frame.loc[unfunded, "expected_gain"] = plain_gain[unfunded].round(2)
    within |= unfunded
    # the reasons quote what was decided: for those now sent the message alone, its lift and cost
    lift, by_model, frame["predicted_uplift"], frame["predicted_spend_uplift"] = lifts.chosen(
        frame["offer_kind"] == "none"
    )
    cost = frame["offer_cost"] + contact_cost

    frame["action"] = np.select(
        [eligible & within & holdout, eligible & within], ["holdout", "contact"], default="skip"
    )
    frame["arm"] = frame["action"].map({"contact": "treatment", "holdout": "holdout"})
    frame.loc[frame["action"] != "contact", "variant"] = None

    frame["last_order_at"] = last_order_times(frame.get("last_day"), len(frame))
    said = reasons(frame, cost, lift, by_model, symbol, eligible, within, owed, unfunded, rank)
    frame["reason"] = pd.Series(said, index=frame.index, dtype=object)  # as text, not inferred as str dtype
    passthrough = ("expected_spend", "mean_spend", "order_id", "description", "occurred_at", "resolved_at",
                   "unresolved", "locale", "time_zone", *STORED)  # fmt: skip
    return frame[DECISION_COLUMNS + [c for c in dict.fromkeys(passthrough) if c in frame.columns]]
