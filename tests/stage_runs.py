"""A campaign run taken through the flow's stages without Prefect: decided and sent as the flow does it, or
left `decided` as a winback older than stages.decide_and_send left it (the flow resumes such a run at its
offers, so that path is tested too)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pandas as pd
from conftest import environment_sink, send_setup
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from winback.config import CampaignConfig
from winback.delivery.limits import SendLimits
from winback.offers.policy import CompensationPolicy
from winback.segments.decision_features import features_kept, stored_features
from winback.stages import campaign as stages
from winback.stages.decide_and_send import Sending, decide_and_send_run
from winback.stages.quality import GatedReads
from winback.warehouse import runs
from winback.warehouse.quality import Findings
from winback.warehouse.source import SourceTables

Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]  # scored, failures, reach


def decide_and_send(
    engine: Engine,
    run: stages.RunHandle,
    frames: Frames,
    config: CampaignConfig,
    model: dict[str, Any],
    gated: GatedReads | None = None,
    *,
    now: dt.datetime,
    src: SourceTables,
) -> dict[str, Any]:
    """A new or `started` run decided, offered, queued and sent to the environment's sink, as the flow's task does."""
    sink = environment_sink()
    sending = Sending(now, {"email": sink, "sms": sink}, SendLimits(), None, send_setup(src), contacts=len(frames[0]))
    policy = CompensationPolicy.default()
    return decide_and_send_run(engine, run, frames, config, policy, model, gated, sending, src=src)


def decide_only(
    engine: Engine,
    run: stages.RunHandle,
    frames: Frames,
    config: CampaignConfig,
    model: dict[str, Any],
    *,
    src: SourceTables,
) -> dict[str, int]:
    """The run's decisions stored and the run moved to `decided`, in one transaction, with no offers or messages."""
    decisions, lifts, uplift = stages.decisions_in_one_part(
        engine, run, *frames, config, CompensationPolicy.default(), Findings(), src=src
    )
    counts = {str(k): int(v) for k, v in Counter(decisions["action"]).items()}
    with Session(engine) as session, session.begin():
        kept = features_kept(decisions)
        runs.record_decisions(
            session.connection(), run.run_id, decisions, stored_features(decisions), features_kept=kept
        )
        lift_used = {k: round(v, 4) for k, v in lifts.items()}
        runs.advance(session, run.run_id, "decided", decisions=counts, model=model, lift_used=lift_used, uplift=uplift)
    return counts
