"""Who gets contacted, who is held out, who is skipped, and why, in words and numbers.

expected gain = lift(offer kind) × customer value − expected offer cost − contact cost

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

from collections.abc import Callable

import numpy as np
import pandas as pd
from babel.numbers import get_currency_symbol

from offers.policy import CompensationPolicy, price_offers
from segments.holdout import assign_holdout
from winback.config import CampaignConfig

KIND_WORDS = {
    "percent_discount": "{v:g}% off",
    "store_credit": "{s}{v:.2f} store credit",
    "free_shipping": "free shipping",
    "refund_share": "{v:g}% refund",
    "free_service": "a free service",
    "none": "the message alone (no offer)",
}
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
]


def _exclusions(frame: pd.DataFrame, config: CampaignConfig) -> pd.Series:
    """The first reason each customer must not be contacted, or None."""
    cooldown = config.contact.cooldown_days
    cap = config.contact.max_messages_per_30_days
    days_since_contact = frame["days_since_contact"]
    cases: list[tuple[pd.Series, Callable[[pd.Series], pd.Series | str]]] = [
        (frame["do_not_contact"], lambda m: "excluded: do-not-contact flag"),
        (frame["fraud_flag"], lambda m: "excluded: fraud/chargeback flag"),
        (frame["channel"].isna(), lambda m: "excluded: " + frame["channel_reason"][m].fillna("no channel")),
        (
            days_since_contact < cooldown,
            lambda m: (
                "excluded: contacted "
                + days_since_contact[m].round().astype(int).astype(str)
                + f" days ago (cooldown {cooldown} days)"
            ),
        ),
        (
            frame["messages_30d"] >= cap,
            lambda m: (
                "excluded: frequency cap ("
                + frame["messages_30d"][m].astype(int).astype(str)
                + f" of {cap} in 30 days)"
            ),
        ),
        (frame["returned_since_failure"], lambda m: "excluded: already returned (ordered after the failure)"),
    ]
    return _first_match(frame.index, cases, lambda m: pd.Series(None, index=m[m].index, dtype=object))


def _offer_words(kind: pd.Series, value: pd.Series, symbol: str) -> pd.Series:
    return pd.Series([KIND_WORDS[k].format(v=v, s=symbol) for k, v in zip(kind, value, strict=True)], index=kind.index)


def _first_match(
    index: pd.Index,
    cases: list[tuple[pd.Series, Callable[[pd.Series], pd.Series | str]]],
    default: Callable[[pd.Series], pd.Series | str],
) -> pd.Series:
    """Like np.select for text, but each case's text is built only for the rows it applies to."""
    out = pd.Series(None, index=index, dtype=object)
    free = pd.Series(True, index=index)
    for mask, build in cases:
        hit = free & mask
        if hit.any():
            out[hit] = build(hit)
        free &= ~hit
    if free.any():
        out[free] = default(free)
    return out


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


def decide(candidates: pd.DataFrame, config: CampaignConfig, policy: CompensationPolicy) -> pd.DataFrame:
    """Decide every candidate; returns DECISION_COLUMNS, one row per candidate.

    Parameters
    ----------
    candidates
        One row per customer in a segment, with: customer_id, segment, failure_id, failure_category,
        severity, unresolved, order_amount, p_active, customer_value, mean_spend, do_not_contact,
        fraud_flag, channel, channel_reason, days_since_contact, messages_30d, returned_since_failure.
    """
    econ = config.economics
    symbol = get_currency_symbol(config.currency, locale="en")
    frame = candidates.reset_index(drop=True)  # pandas copy-on-write: our edits never reach the caller
    frame["exclusion"] = _exclusions(frame, config)
    frame = price_offers(frame, policy, econ.redemption_rate)
    contact_cost = frame["channel"].map(econ.contact_cost).fillna(0.0).astype(float)
    lift = frame["offer_kind"].map(econ.lift_prior).fillna(0.0)
    gain = lift * frame["customer_value"] - frame["offer_cost"] - contact_cost
    # the same message without compensation is always an option: keep the offer only when it pays more
    plain_gain = econ.lift_prior.get("none", 0.0) * frame["customer_value"] - contact_cost
    aggrieved = frame["segment"] == "aggrieved"
    # an aggrieved customer is owed the apology whatever they are worth; only compensation must pay
    plain = (plain_gain > gain) | (aggrieved & (gain <= econ.min_expected_gain))
    frame.loc[plain, "offer_kind"] = "none"
    frame.loc[plain, ["offer_value", "offer_amount", "offer_cost"]] = 0.0
    frame["expected_gain"] = np.where(plain, plain_gain, gain).round(2)
    lift = frame["offer_kind"].map(econ.lift_prior).fillna(0.0)
    cost = frame["offer_cost"] + contact_cost

    owed = aggrieved & (frame["expected_gain"] <= econ.min_expected_gain)
    eligible = frame["exclusion"].isna() & ((frame["expected_gain"] > econ.min_expected_gain) | aggrieved)
    holdout = pd.Series(False, index=frame.index)
    holdout[eligible] = assign_holdout(config.campaign_id, frame.loc[eligible], config.holdout_share)

    ratio = frame["expected_gain"] / cost.clip(lower=0.01)
    order = ratio[eligible].sort_values(ascending=False, kind="stable").index
    within = pd.Series(False, index=frame.index)
    within[order] = spend_budget(
        frame.loc[order, "offer_cost"].to_numpy(dtype=float),
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

    frame["action"] = np.select(
        [eligible & within & holdout, eligible & within], ["holdout", "contact"], default="skip"
    )
    frame["arm"] = frame["action"].map({"contact": "treatment", "holdout": "holdout"})

    unresolved_words = pd.Series("", index=frame.index, dtype=object).mask(
        frame["unresolved"].fillna(False).astype(bool), " (unresolved)"
    )
    failure_words = (
        "severity-"
        + frame["severity"].fillna(0).astype(int).astype(str)
        + " "
        + frame["failure_category"].fillna("").str.replace("_", " ")
        + unresolved_words
    )
    lapsed_words = "lapsed, " + frame.get("lapsed_because", pd.Series("", index=frame.index)).fillna("").astype(str)
    why_segment = failure_words.where(frame["segment"] == "aggrieved", lapsed_words)
    numbers = (
        "p_active "
        + frame["p_active"].round(2).astype(str)
        + f", value {symbol}"
        + frame["customer_value"].round(2).map("{:.2f}".format)
        + f"; expected gain {symbol}"
        + frame["expected_gain"].map("{:.2f}".format)
        + f" vs cost {symbol}"
        + cost.map("{:.2f}".format)
        + " (lift "
        + (lift * 100).round(1).astype(str)
        + " pts)"
    )
    offer = _offer_words(frame["offer_kind"], frame["offer_value"], symbol) + " by " + frame["channel"].fillna("-")
    total = len(order)
    prefix = pd.Series("", index=frame.index, dtype=object)
    prefix[owed] = "apology owed (not for the value); "
    prefix[unfunded] = "apology only: compensation over budget; "
    ranked = "skipped: over budget (ranked " + rank.fillna(0).astype(int).astype(str) + f" of {total}); "
    # each row's reason is built only from the parts its case needs: at 1M customers, building every
    # variant for every row (or np.select's fixed-width strings) costs gigabytes
    reason = _first_match(
        frame.index,
        [
            (frame["exclusion"].notna(), lambda m: frame["exclusion"][m] + "; " + why_segment[m]),
            (~eligible, lambda m: "skipped: not worth it; " + why_segment[m] + "; " + numbers[m]),
            (~within, lambda m: ranked[m] + why_segment[m] + "; " + numbers[m]),
            (
                frame["action"] == "holdout",
                lambda m: "holdout (random control); " + why_segment[m] + "; " + numbers[m] + "; would get " + offer[m],
            ),
        ],
        lambda m: "contact: " + prefix[m] + why_segment[m] + "; " + numbers[m] + "; " + offer[m],
    )
    frame["reason"] = reason
    return frame[
        DECISION_COLUMNS
        + [
            c
            for c in (
                "expected_spend",
                "mean_spend",
                "order_id",
                "description",
                "occurred_at",
                "resolved_at",
                "unresolved",
                "locale",
                "time_zone",
            )
            if c in frame.columns
        ]
    ]
