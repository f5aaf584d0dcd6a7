"""A campaign run's decisions in parts: what is read once per run, then each part priced and finished.

A run decides in three steps (`segments.decision`): each part of its customers is priced, the holdout and the
budget walk run once over every part's eligible customers, then each part is finished. One process decides a
run as one part; a partitioned run decides each partition as a part (stages.partitioned), with the same
results. What every part shares (the contact history, opt-outs, the measured lifts and the uplift model)
is read once, into a `DecisionContext`.

Contact data is checked for the candidates only (see stages.quality): phone numbers before SMS is kept,
time zones and locales of those to be messaged; what is set aside goes to the caller's `findings`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection

from winback.config import CampaignConfig
from winback.messages.channel_choice import choose_channels
from winback.offers.policy import CompensationPolicy
from winback.segments.budget_walk import select_within_budget
from winback.segments.candidates import build_candidates
from winback.segments.decision import PricedCandidates, finish_decisions, price_candidates
from winback.segments.holdout import run_key
from winback.segments.learning import updated_lifts
from winback.segments.uplift.decision_model import DecisionUplift, train_decision_uplift
from winback.stages import quality
from winback.warehouse import runs
from winback.warehouse.past_outcomes import past_outcomes
from winback.warehouse.quality import Findings
from winback.warehouse.returns import measured_lift_by_offer_kind
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import to_epoch_days


@dataclass(frozen=True)
class DecisionContext:
    """What every part of a run is decided with: read once from winback's state."""

    config: CampaignConfig  # with the per-offer-kind lifts measured so far in place of the priors
    policy: CompensationPolicy
    history: pd.DataFrame  # contact history and past outcomes, per customer
    suppressed: pd.DataFrame  # winback's opt-outs
    uplift: DecisionUplift | None
    lifts: dict[str, float]
    as_of_day: float
    holdout_key: str
    typical_gap: float | None = None  # the run's median gap between orders, when a part is not the whole run

    @property
    def uplift_summary(self) -> dict[str, Any]:
        """The uplift model's summary as the run stores it (empty: no model)."""
        return self.uplift.summary if self.uplift else {}


@dataclass(frozen=True)
class PricedPart:
    """A part priced, with the channels chosen for its customers (the finishing step reads them again)."""

    priced: PricedCandidates
    reach: pd.DataFrame


def decision_context(
    state: Connection,
    as_of: dt.datetime,
    run_id: int | None,
    config: CampaignConfig,
    policy: CompensationPolicy,
    *,
    with_uplift: bool = True,
    typical_gap: float | None = None,
) -> DecisionContext:
    """The run's shared inputs, read from winback's state once for every part.

    Measured lifts replace the priors where known; the uplift model is trained from the closed runs where it
    has evidence (``with_uplift=False``: the per-offer-kind lift alone).
    """
    history = runs.contact_history(state, as_of, exclude_run_id=run_id)
    history = history.merge(past_outcomes(state, as_of, run_id), on="customer_id", how="outer")
    measured = measured_lift_by_offer_kind(state, config.campaign_id, as_of)
    uplift = train_decision_uplift(state, config.campaign_id, as_of) if with_uplift else None
    lifts = updated_lifts(config.economics.lift_prior, measured)
    if lifts != config.economics.lift_prior:
        economics = config.economics.model_copy(update={"lift_prior": lifts})
        config = config.model_copy(update={"economics": economics})
    key = run_key(config.campaign_id, as_of)
    return DecisionContext(
        config, policy, history, runs.suppressions(state), uplift, lifts, to_epoch_days(as_of), key, typical_gap
    )


def price_part(
    warehouse: Connection,
    src: SourceTables,
    context: DecisionContext,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    findings: Findings,
) -> PricedPart:
    """One part's candidates, their SMS numbers checked, priced: ready for the run-wide walk."""
    reach = choose_channels(reach, context.suppressed)
    candidates = build_candidates(
        scored, failures, reach, context.history, context.config, context.as_of_day, context.typical_gap
    )
    candidates = quality.screen_sms_phones(warehouse, src, candidates, context.suppressed, findings)
    return PricedPart(price_candidates(candidates, context.config, context.policy, context.uplift), reach)


def select(context: DecisionContext, walk: pd.DataFrame) -> pd.DataFrame:
    """The run-wide holdout and budget walk over every part's eligible customers (`PricedCandidates.walk`)."""
    return select_within_budget(walk, context.holdout_key, context.config.holdout_share, context.config.budget)


def finish_part(
    warehouse: Connection,
    src: SourceTables,
    context: DecisionContext,
    part: PricedPart,
    selected: pd.DataFrame,
    ranked_of: int,
    findings: Findings,
) -> pd.DataFrame:
    """One part's decisions, given the walk's verdict on its customers; fallbacks for contact data noted.

    `ranked_of` is how many customers the run's walk ranked, which the reasons quote.
    """
    decided = finish_decisions(part.priced, selected, context.config, context.policy, context.holdout_key, ranked_of)
    return quality.contact_fallbacks(warehouse, src, decided, part.reach, findings)


def decide_whole(
    warehouse: Connection,
    src: SourceTables,
    context: DecisionContext,
    scored: pd.DataFrame,
    failures: pd.DataFrame,
    reach: pd.DataFrame,
    findings: Findings,
) -> pd.DataFrame:
    """A run decided as one part, in one process."""
    part = price_part(warehouse, src, context, scored, failures, reach, findings)
    walk = part.priced.walk
    return finish_part(warehouse, src, context, part, select(context, walk), len(walk), findings)
