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

from collections.abc import Callable

import numpy as np
import pandas as pd
from babel.numbers import get_currency_symbol

from winback.config import CampaignConfig
from winback.offers.policy import CompensationPolicy, price_offers
from winback.segments.decision_features import STORED
from winback.segments.holdout import assign_holdout
from winback.segments.option_lifts import option_lifts
from winback.segments.text import money, str_each, strings
from winback.segments.uplift.decision_model import LIFT_SOURCE, MODEL_SOURCE, DecisionUplift
from winback.segments.variants import draw_variants, variant_offers

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
    "last_order_at",
    "predicted_uplift",
    "predicted_spend_uplift",
    "variant",
]


Build = Callable[[np.ndarray], np.ndarray | str]


def _exclusions(frame: pd.DataFrame, config: CampaignConfig) -> np.ndarray:
    """The first reason each customer must not be contacted, or None."""
    cooldown = config.contact.cooldown_days
    cap = config.contact.max_messages_per_30_days
    days_since_contact = frame["days_since_contact"].to_numpy(dtype=float)
    messages_30d = frame["messages_30d"].to_numpy()
    held_until = frame["held_out_until"] if "held_out_until" in frame else pd.Series(pd.NaT, index=frame.index)
    held_by = frame["held_out_by"] if "held_out_by" in frame else pd.Series(None, index=frame.index, dtype=object)
    cases: list[tuple[np.ndarray, Build]] = [
        (frame["do_not_contact"].to_numpy(dtype=bool), lambda m: "excluded: do-not-contact flag"),
        (frame["fraud_flag"].to_numpy(dtype=bool), lambda m: "excluded: fraud/chargeback flag"),
        (
            frame["channel"].isna().to_numpy(),
            lambda m: "excluded: " + strings(frame["channel_reason"][m], missing="no channel"),
        ),
        (
            held_until.notna().to_numpy(),
            lambda m: (
                "excluded: in the holdout of "
                + strings(held_by[m], missing="an earlier run")
                + " until "
                + strings(pd.to_datetime(held_until[m], utc=True).dt.strftime("%Y-%m-%d"), missing="?")
            ),
        ),
        (days_since_contact < 0, lambda m: "excluded: a message to them is already scheduled"),
        (
            days_since_contact < cooldown,
            lambda m: (
                "excluded: contacted "
                + str_each(np.floor(days_since_contact[m]).astype(int))
                + f" days ago (cooldown {cooldown} days)"
            ),
        ),
        (
            messages_30d >= cap,
            lambda m: "excluded: frequency cap (" + str_each(messages_30d[m].astype(int)) + f" of {cap} in 30 days)",
        ),
        (
            frame["returned_since_failure"].to_numpy(dtype=bool),
            lambda m: "excluded: already returned (ordered after the failure)",
        ),
    ]
    return _first_match(len(frame), cases)


def _first_match(size: int, cases: list[tuple[np.ndarray, Build]], default: Build | None = None) -> np.ndarray:
    """Like np.select for text, but each case's text is built only for the rows it applies to (else None)."""
    out = np.full(size, None, dtype=object)
    free = np.ones(size, dtype=bool)
    for mask, build in cases:
        hit = free & mask
        if hit.any():
            out[hit] = build(hit)
        free &= ~hit
    if default is not None and free.any():
        out[free] = default(free)
    return out


def _why_segment(frame: pd.DataFrame, aggrieved: np.ndarray) -> np.ndarray:
    """What put each customer in their segment: the failure for the aggrieved, the lapse for the others."""
    out = np.empty(len(frame), dtype=object)
    severity = frame["severity"].fillna(0).astype(int).to_numpy()[aggrieved]
    category = [c.replace("_", " ") for c in strings(frame["failure_category"])[aggrieved]]
    unresolved = frame["unresolved"].fillna(False).astype(bool).to_numpy()[aggrieved]
    out[aggrieved] = (
        "severity-"
        + str_each(severity)
        + " "
        + np.array(category, dtype=object)
        + np.where(unresolved, " (unresolved)", "").astype(object)
    )
    lapsed_because = frame.get("lapsed_because", pd.Series("", index=frame.index))
    out[~aggrieved] = "lapsed, " + strings(lapsed_because)[~aggrieved]
    return out


def _numbers(
    frame: pd.DataFrame, rows: np.ndarray, cost: pd.Series, lift: pd.Series, by_model: np.ndarray, symbol: str
) -> np.ndarray:
    """The figures behind a decision, for the given rows: probability, value, gain against cost, lift and its source."""

    def pick(values: pd.Series) -> np.ndarray:
        return values.to_numpy()[rows]

    return (
        "p_active "
        + str_each(pick(frame["p_active"].round(2)))
        + f", value {symbol}"
        + money(pick(frame["customer_value"].round(2)))
        + f"; expected gain {symbol}"
        + money(pick(frame["expected_gain"]))
        + f" vs cost {symbol}"
        + money(pick(cost))
        + " (lift "
        + str_each(pick((lift * 100).round(1)))
        + " pts, "
        + np.where(by_model[rows], MODEL_SOURCE, LIFT_SOURCE).astype(object)
        + ")"
    )


def _offer_words(frame: pd.DataFrame, rows: np.ndarray, symbol: str) -> np.ndarray:
    """'15% off by email', 'the message alone (no offer) by sms', ... for the given rows."""
    kinds = frame["offer_kind"].to_numpy()[rows]
    values = frame["offer_value"].to_numpy()[rows].tolist()
    words = [KIND_WORDS[k].format(v=v, s=symbol) for k, v in zip(kinds, values, strict=True)]
    return np.array(words, dtype=object) + " by " + strings(frame["channel"], missing="-")[rows]


def _only(rows: np.ndarray, build: Build) -> np.ndarray:
    """build(rows) at those rows, None elsewhere: text made only for the reasons that quote it."""
    return _first_match(len(rows), [(rows, build)])


def _reasons(
    frame: pd.DataFrame,
    cost: pd.Series,
    lift: pd.Series,
    by_model: np.ndarray,
    symbol: str,
    eligible: pd.Series,
    within: pd.Series,
    owed: pd.Series,
    unfunded: pd.Series,
    rank: pd.Series,
) -> np.ndarray:
    """Each decision's reason, in words and numbers.

    Each row's reason is built only from the parts its case needs: at 1M customers, building every
    variant for every row (or np.select's fixed-width strings) costs gigabytes.
    """
    exclusion = frame["exclusion"].to_numpy()
    excluded = frame["exclusion"].notna().to_numpy()
    action = frame["action"].to_numpy()
    why = _why_segment(frame, (frame["segment"] == "aggrieved").to_numpy())
    numbers = _only(~excluded, lambda m: _numbers(frame, m, cost, lift, by_model, symbol))
    harmful = ~eligible.to_numpy() & by_model & (lift.to_numpy() < 0)
    offer = _only(action != "skip", lambda m: _offer_words(frame, m, symbol))
    prefix = np.full(len(frame), "", dtype=object)
    prefix[owed.to_numpy()] = "apology owed (not for the value); "
    prefix[unfunded.to_numpy()] = "apology only: compensation over budget; "
    rank_text = rank.fillna(0).astype(int).to_numpy()
    total = int(rank.notna().sum())
    return _first_match(
        len(frame),
        [
            (excluded, lambda m: exclusion[m] + "; " + why[m]),
            (
                harmful,
                lambda m: (
                    "skipped: a message is predicted to lower their chance of returning; " + why[m] + "; " + numbers[m]
                ),
            ),
            (~eligible.to_numpy(), lambda m: "skipped: not worth it; " + why[m] + "; " + numbers[m]),
            (
                ~within.to_numpy(),
                lambda m: (
                    "skipped: over budget (ranked "
                    + str_each(rank_text[m])
                    + f" of {total}); "
                    + why[m]
                    + "; "
                    + numbers[m]
                ),
            ),
            (
                action == "holdout",
                lambda m: "holdout (random control); " + why[m] + "; " + numbers[m] + "; would get " + offer[m],
            ),
        ],
        lambda m: "contact: " + prefix[m] + why[m] + "; " + numbers[m] + "; " + offer[m],
    )


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
    frame["exclusion"] = pd.Series(_exclusions(frame, config), index=frame.index, dtype=object)
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
    reasons = _reasons(frame, cost, lift, by_model, symbol, eligible, within, owed, unfunded, rank)
    frame["reason"] = pd.Series(reasons, index=frame.index, dtype=object)  # as text, not inferred as str dtype
    passthrough = ("expected_spend", "mean_spend", "order_id", "description", "occurred_at", "resolved_at",
                   "unresolved", "locale", "time_zone", *STORED)  # fmt: skip
    return frame[DECISION_COLUMNS + [c for c in dict.fromkeys(passthrough) if c in frame.columns]]
