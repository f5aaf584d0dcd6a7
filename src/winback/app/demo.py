"""`winback demo`: the whole product on a realistic warehouse, in one command, on the embedded SQLite.

The demo knows the truth it simulated, so the report's measured lift and its confidence interval can be
checked against it. By default the effect of contact differs by customer (`demo_data.effects`: persuadables,
sure things, lost causes, sleeping dogs), earlier campaigns are replayed first so the uplift model has
holdouts to learn from (`demo_history`), and the uplift policy is compared with the constant-lift policy
on the simulation's truth. With `true_lift`, contact raises everyone's return probability by that much
instead, and there is no history.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from winback.config import CampaignConfig, Economics

DEFAULT_AS_OF = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def demo_config() -> CampaignConfig:
    # a contact must be expected to gain a quarter (of its margin) at least: what an email costs in list fatigue
    economics = Economics(min_expected_gain=0.25)
    return CampaignConfig(campaign_id="demo-winback", budget=20_000.0, holdout_share=0.2, economics=economics)


def run_demo(
    console: Console, *, customers: int, true_lift: float | None, out: Path, database: Path, seed: int = 7
) -> dict[str, Any]:
    from winback.app.demo_data import generate_demo_warehouse, simulate_campaign_response
    from winback.flows.campaign import winback_campaign
    from winback.flows.dispatch import dispatch_outbox
    from winback.flows.report import retention_report
    from winback.flows.track import track_returns
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import upgrade

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    os.environ["WINBACK_DATABASE_URL"] = url
    os.environ.setdefault("WINBACK_SINK_PATH", str(out / "outbox_sink.jsonl"))
    Path(os.environ["WINBACK_SINK_PATH"]).unlink(missing_ok=True)
    started = time.perf_counter()
    engine = make_engine(url)
    upgrade(url, engine=engine)
    as_of = DEFAULT_AS_OF
    config = demo_config()

    with console.status("building the demo warehouse"):
        data = generate_demo_warehouse(engine, customers=customers, seed=seed, as_of=as_of, replace=True)
    console.print(
        f"[bold]warehouse[/bold] {data.customers:,} customers, {data.orders:,} orders, "
        f"{data.service_failures:,} service failures ({database})"
    )
    if true_lift is None:  # earlier campaigns first: their holdouts are what the uplift model learns from
        from winback.app.demo_history import run_past_campaigns

        with console.status("replaying earlier campaigns"):
            run_past_campaigns(console, engine, config, as_of, seed=seed)
    with console.status("running the campaign"):
        result = winback_campaign(config=config, as_of=as_of, now=as_of)
    console.print(
        f"[bold]campaign[/bold] run {result['run_id']}: decisions {result.get('decisions')}, "
        f"offers {result['offers_issued']}, messages queued {result['messages_queued']}"
    )
    console.print(f"[bold]sent[/bold] now: {result.get('sending')}")
    later = dispatch_outbox(now=as_of + dt.timedelta(days=1, hours=8))  # the next day, daytime in every zone
    console.print(f"[bold]sent[/bold] after quiet hours: {later}")
    again = winback_campaign(config=config, as_of=as_of, now=as_of)
    console.print(
        f"[bold]re-run[/bold] of the same date: messages queued {again['messages_queued']}, "
        f"sent {again.get('sending', {}).get('sent', 0)} (nothing twice)"
    )

    if true_lift is None:
        from winback.app.demo_data import simulate_heterogeneous_response

        response = simulate_heterogeneous_response(
            engine, result["run_id"], window_days=config.attribution_days, seed=seed + 4
        )
    else:
        response = simulate_campaign_response(
            engine, result["run_id"], window_days=config.attribution_days, true_lift=true_lift, seed=seed + 4
        )
    track_returns(
        run_id=result["run_id"],
        window_days=config.attribution_days,
        now=as_of + dt.timedelta(days=config.attribution_days + 1),
    )
    effect = response.true_ate
    note = f"Demo truth: contact raises the 30-day return probability by {effect * 100:+.1f} pp on average (simulated)."
    if true_lift is None:
        _print_policy_truth(console, engine, config, result["run_id"], as_of)
    report = retention_report(config=config, run_id=result["run_id"], out_dir=str(out), notes=[note])
    overall = report["overall"][0]
    from winback.app.cli import print_overall

    print_overall(overall, report.get("window_open"))
    inside = overall["abs_lift_low"] <= effect <= overall["abs_lift_high"]
    console.print(
        f"true simulated lift {effect * 100:+.1f} pp is "
        + ("[green]inside[/green]" if inside else "[red]outside[/red]")
        + " the 95% interval"
    )
    console.print(f"report: [bold]{out / 'report.html'}[/bold] · {time.perf_counter() - started:.1f} s")
    return {
        "data": data,
        "campaign": result,
        "response": response,
        "overall": overall,
        "truth_inside": inside,
    }


def _print_policy_truth(console: Console, engine: Any, config: CampaignConfig, run_id: int, as_of: dt.datetime) -> None:
    """The simulation's truth: incremental returns per 1,000 contacts, uplift policy against constant lift."""
    from winback.app.demo_history import policy_truth

    truth = policy_truth(engine, config, run_id, as_of)
    console.print(
        f"[bold]truth[/bold] incremental returns per 1,000 contacts at the same budget: uplift policy "
        f"{truth.uplift_per_1000:.1f} ({truth.uplift_contacts:,} contacts), constant-lift policy "
        f"{truth.constant_per_1000:.1f} ({truth.constant_contacts:,} contacts): {truth.ratio:.2f}x"
    )
