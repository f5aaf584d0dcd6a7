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

The holdout and the walk look at the whole run (`segments.budget_walk`); the rest is worked out customer by
customer. So `decide` is three steps a partitioned run can take apart: `price_candidates` on each part,
`select_within_budget` once over every part's eligible customers, `finish_decisions` on each part again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from babel.numbers import get_currency_symbol

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy, price_offers
from winback.segments.budget_walk import select_within_budget
from winback.segments.decision_features import STORED
from winback.segments.option_lifts import OptionLifts, option_lifts
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


@dataclass(frozen=True)
class PricedCandidates:
    """Candidates with every option priced and judged, before the run-wide holdout and budget walk.

    What `finish_decisions` needs to decide them once `budget_walk.select_within_budget` has run over the
    eligible customers of the whole run (`walk`).
    """

    frame: pd.DataFrame
    lifts: OptionLifts
    offer_value: pd.Series  # the offer's expected incremental value before its costs
    plain_gain: pd.Series  # the message alone's expected gain
    contact_cost: pd.Series
    eligible: pd.Series  # worth contacting: not excluded, and worth it (or owed the apology)
    owed: pd.Series  # aggrieved and owed the apology whatever it is worth
    walk: pd.DataFrame  # budget_walk.WALK_COLUMNS of the eligible rows, indexed as `frame`


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
    key = holdout_key or config.campaign_id
    priced = price_candidates(candidates, config, policy, uplift)
    selected = select_within_budget(priced.walk, key, config.holdout_share, config.budget)
    return finish_decisions(priced, selected, config, policy, key, len(priced.walk))


def price_candidates(
    candidates: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    uplift: DecisionUplift | None = None,
) -> PricedCandidates:
    """Exclusions, each option's price and expected gain, and who is eligible: customer by customer."""
    econ = config.economics
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
    # the budget is walked with each customer's dearest variant, so who is reached does not depend on the
    # variant drawn (segments.variants); the variants are drawn once the holdout is known
    walk_cost = frame["offer_cost"]
    if config.variants:
        _, walk_cost = variant_offers(frame, pd.Series(None, index=frame.index, dtype=object), config, policy)
    walk = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "segment": frame["segment"],
            "ratio": frame["expected_gain"] / cost.clip(lower=0.01),
            "walk_cost": walk_cost.astype(float),
        }
    ).loc[eligible]
    return PricedCandidates(frame, lifts, offer_value, plain_gain, contact_cost, eligible, owed, walk)


def finish_decisions(
    priced: PricedCandidates,
    selected: pd.DataFrame,
    config: CampaignConfig,
    policy: CompensationPolicy,
    holdout_key: str,
    ranked_of: int,
) -> pd.DataFrame:
    """The decisions of `priced`'s customers, given the run-wide holdout and walk's verdict on them.

    `selected` is `select_within_budget`'s result for these customers, indexed as `priced.walk`; `ranked_of`
    is how many customers the whole run's walk ranked (the reasons quote it).
    """
    frame, eligible, aggrieved = priced.frame.copy(deep=False), priced.eligible, priced.frame["segment"] == "aggrieved"
    holdout = selected["held"].reindex(frame.index, fill_value=False).astype(bool)
    within = selected["within"].reindex(frame.index, fill_value=False).astype(bool)
    rank = selected["rank"].reindex(frame.index)
    # message/offer variants, drawn after the holdout among the rest
    frame["variant"] = None
    if config.variants:
        drawn = eligible & ~holdout
        frame.loc[drawn, "variant"] = draw_variants(holdout_key, frame.loc[drawn, ["customer_id", "segment"]], config)
        before = frame["offer_cost"]
        frame, _ = variant_offers(frame, frame["variant"], config, policy)
        changed = frame["offer_cost"] != before
        gain = priced.offer_value - frame["offer_cost"] - priced.contact_cost
        frame.loc[changed, "expected_gain"] = gain[changed].round(2)
    # past the budget, an aggrieved customer still gets the apology, without compensation
    unfunded = eligible & ~within & aggrieved
    frame.loc[unfunded, "offer_kind"] = "none"
    frame.loc[unfunded, ["offer_value", "offer_amount", "offer_cost"]] = 0.0
    frame.loc[unfunded, "expected_gain"] = priced.plain_gain[unfunded].round(2)
    within |= unfunded
    # the reasons quote what was decided: for those now sent the message alone, its lift and cost
    lift, by_model, frame["predicted_uplift"], frame["predicted_spend_uplift"] = priced.lifts.chosen(
        frame["offer_kind"] == "none"
    )
    cost = frame["offer_cost"] + priced.contact_cost

    frame["action"] = np.select(
        [eligible & within & holdout, eligible & within], ["holdout", "contact"], default="skip"
    )
    frame["arm"] = frame["action"].map({"contact": "treatment", "holdout": "holdout"})
    frame.loc[frame["action"] != "contact", "variant"] = None

    frame["last_order_at"] = last_order_times(frame.get("last_day"), len(frame))
    symbol = get_currency_symbol(config.currency, locale="en")
    said = reasons(frame, cost, lift, by_model, symbol, eligible, within, priced.owed, unfunded, rank, ranked_of)
    frame["reason"] = pd.Series(said, index=frame.index, dtype=object)  # as text, not inferred as str dtype
    passthrough = ("expected_spend", "mean_spend", "order_id", "description", "occurred_at", "resolved_at",
                   "unresolved", "locale", "time_zone", *STORED)  # fmt: skip
    return frame[DECISION_COLUMNS + [c for c in dict.fromkeys(passthrough) if c in frame.columns]]
