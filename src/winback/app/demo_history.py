"""The demo's past: earlier campaigns whose holdouts the uplift model learns from, and the truth it is judged by.

`winback demo` first replays :data:`PAST_RUNS` monthly campaigns in the generated history (each decided,
sent, answered by the simulated customers with heterogeneous true effects, and tracked once its window has
closed), then runs today's campaign. The simulation knows each customer's true effect, so the uplift policy
(what today's run decided) can be compared with the per-offer-kind (constant) lift policy at the same
budget (what the run would have decided without the model), in incremental returns per 1,000 contacts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from sqlalchemy import Engine, select

from winback.app.demo_data import simulate_heterogeneous_response
from winback.app.demo_data.effects import true_effect
from winback.app.demo_data.tables import demo_truth
from winback.config import CampaignConfig
from winback.offers.policy import load_policy
from winback.segments.scoring import score_customers
from winback.settings import Settings
from winback.stages import campaign as stages
from winback.warehouse.models import CampaignRun
from winback.warehouse.source import SourceTables

PAST_RUNS = 5
SPACING_DAYS = 35  # longer than the 30-day window: each run's holdout is free again by the next


def _used(engine: Engine, run_id: int) -> str:
    with engine.connect() as conn:
        stats = conn.execute(select(CampaignRun.stats).where(CampaignRun.id == run_id)).scalar_one() or {}
    uplift = stats.get("uplift") or {}
    if uplift.get("used"):
        kinds = ", ".join(uplift.get("trusted_kinds", []))
        return f"uplift model for {kinds} (held-out Qini {uplift.get('validation_qini') or 0:.4f})"
    return f"per-offer-kind lift ({uplift.get('note') or 'no model'})"


def run_past_campaigns(
    console: Console,
    engine: Engine,
    config: CampaignConfig,
    as_of: dt.datetime,
    *,
    url: str,
    runs: int = PAST_RUNS,
    seed: int,
    warehouse_url: str | None = None,
) -> list[int]:
    """Replay ``runs`` campaigns, :data:`SPACING_DAYS` apart, before ``as_of``: decide, send, respond, track.

    Each reads today's warehouse (`warehouse_url`, read only; None: the source tables are in the state at `url`);
    the simulated customers' answers are written to it, between runs, by the demo's one writable engine.
    """
    from winback.app.commands.common import run_flow
    from winback.app.demo_data.writable import demo_source_writer
    from winback.flows.campaign import winback_campaign
    from winback.flows.dispatch import dispatch_outbox
    from winback.flows.track import track_returns

    done = []
    for k in range(runs, 0, -1):
        at = as_of - dt.timedelta(days=SPACING_DAYS * k)
        urls = {"database_url_override": url, "warehouse_url_override": warehouse_url}
        result = run_flow(winback_campaign, config=config, as_of=at, now=at, data_read_at=as_of, **urls)
        run_flow(dispatch_outbox, now=at + dt.timedelta(days=1, hours=8), **urls)
        with demo_source_writer(engine, warehouse_url) as shop:
            response = simulate_heterogeneous_response(
                engine, result["run_id"], window_days=config.attribution_days, seed=seed + k, warehouse=shop
            )
        run_flow(
            track_returns, run_id=result["run_id"], window_days=config.attribution_days,
            now=at + dt.timedelta(days=config.attribution_days + 1), **urls,
        )  # fmt: skip
        console.print(
            f"[bold]past run[/bold] {at:%Y-%m-%d}: {response.decided_treatment:,} contacted, "
            f"{response.decided_holdout:,} held out, true average effect {response.true_ate * 100:+.1f} pp; "
            f"decided on the {_used(engine, result['run_id'])}"
        )
        done.append(result["run_id"])
    return done


@dataclass(frozen=True)
class PolicyTruth:
    """Each policy's contacts at the same budget and the returns they truly add (the simulation's truth)."""

    uplift_contacts: int
    uplift_incremental: float
    constant_contacts: int
    constant_incremental: float

    @property
    def uplift_per_1000(self) -> float:
        """Incremental returns per 1,000 contacts of the uplift policy."""
        return 1000.0 * self.uplift_incremental / max(self.uplift_contacts, 1)

    @property
    def constant_per_1000(self) -> float:
        """Incremental returns per 1,000 contacts of the constant-lift policy."""
        return 1000.0 * self.constant_incremental / max(self.constant_contacts, 1)

    @property
    def ratio(self) -> float:
        """How many times the constant-lift policy's incremental returns the uplift policy gets."""
        return self.uplift_per_1000 / self.constant_per_1000 if self.constant_per_1000 > 0 else float("inf")


def _incremental(warehouse: Engine, decisions: pd.DataFrame, window_days: int) -> tuple[int, float]:
    contacted = decisions.loc[decisions["action"] == "contact"].reset_index(drop=True)
    with warehouse.connect() as conn:
        truth = pd.DataFrame(
            conn.execute(select(demo_truth.c.customer_id, demo_truth.c.daily_rate, demo_truth.c.alive_at_as_of)).all(),
            columns=["customer_id", "daily_rate", "alive"],
        ).set_index("customer_id")
    hidden = truth.reindex(contacted["customer_id"])
    p0 = hidden["alive"].astype(float).to_numpy() * (1.0 - np.exp(-hidden["daily_rate"].to_numpy() * window_days))
    return len(contacted), float(true_effect(contacted, np.nan_to_num(p0)).sum())


def policy_truth(
    engine: Engine, config: CampaignConfig, run_id: int, as_of: dt.datetime, src: SourceTables | None = None
) -> PolicyTruth:
    """Today's run decided on the uplift model; the same run on the per-offer-kind lift, at the same budget.

    `src`: the source tables and where they are read (default: as the settings say); the truth is read there.
    """
    src = src or SourceTables.from_settings(Settings())
    policy = load_policy(config.policy_file)
    rfm = stages.summarise_batch(engine, src, as_of, (None, None))
    failures, reach, _ = stages.context_batch(engine, src, as_of, (None, None), config.aggrieved.lookback_days)
    scored, _ = score_customers(rfm, config.economics, config.use_models)
    frames: dict[bool, Any] = {
        with_uplift: stages.decisions_for(
            engine, as_of, run_id, scored, failures, reach, config, policy, with_uplift=with_uplift, src=src
        )
        for with_uplift in (True, False)
    }
    warehouse = src.reader(engine)
    uplift_n, uplift_gain = _incremental(warehouse, frames[True], config.attribution_days)
    constant_n, constant_gain = _incremental(warehouse, frames[False], config.attribution_days)
    return PolicyTruth(uplift_n, uplift_gain, constant_n, constant_gain)
