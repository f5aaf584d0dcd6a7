"""The Prefect flows themselves, ephemeral (no server): few and end to end, since each costs seconds."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AS_OF
from sqlalchemy import Engine, func, select

from winback.app.demo_data import simulate_campaign_response
from winback.config import CampaignConfig
from winback.warehouse.models import CampaignRun, OutboxMessage


@pytest.fixture
def url(demo_engine: Engine) -> str:
    return demo_engine.url.render_as_string(hide_password=False)


def test_campaign_track_report_flows(url: str, demo_engine: Engine, tmp_path: Path) -> None:
    from winback.flows.campaign import winback_campaign
    from winback.flows.dispatch import dispatch_outbox
    from winback.flows.report import retention_report
    from winback.flows.track import track_returns

    config = CampaignConfig(campaign_id="flow-test", budget=3000.0, holdout_share=0.2, batch_size=800)
    result = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    assert result["batches"] == 3
    assert result["decisions"]["contact"] > 0
    assert result["model"]["method"] == "bgnbd+gamma_gamma"
    dispatched = dispatch_outbox(now=AS_OF + dt.timedelta(days=1, hours=8), database_url_override=url)
    with demo_engine.connect() as conn:
        queued = conn.execute(select(func.count()).where(OutboxMessage.status == "queued")).scalar_one()
    assert queued == 0
    assert dispatched.get("sent", 0) + result["sending"].get("sent", 0) > 0

    simulate_campaign_response(demo_engine, result["run_id"], window_days=30, true_lift=0.05, seed=3)
    tracked = track_returns(run_id=result["run_id"], database_url_override=url)
    assert tracked["tracked"][result["run_id"]] == result["decisions"]["contact"] + result["decisions"]["holdout"]
    report = retention_report(
        config=config, run_id=result["run_id"], out_dir=str(tmp_path / "r"), database_url_override=url
    )
    assert (tmp_path / "r" / "report.html").exists()
    assert "flow-test-lift-overall" in report["artifacts"]
    overall = report["overall"][0]
    assert overall["n_treated"] == result["decisions"]["contact"]
    assert overall["n_holdout"] == result["decisions"]["holdout"]


def test_demo_command_runs_clean(tmp_path: Path) -> None:
    """`winback demo` end to end in a fresh process: report written, truth checked, no traceback at exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_SERVICES")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "winback.app.cli",
            "demo",
            "--customers",
            "4000",
            "--out",
            str(tmp_path / "out"),
            "--database",
            str(tmp_path / "demo.db"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "CancelledError" not in proc.stderr + proc.stdout
    assert "true simulated lift" in proc.stdout
    assert "past run" in proc.stdout and "constant-lift policy" in proc.stdout  # learned from earlier holdouts
    assert "(nothing twice)" in proc.stdout
    overall = json.loads((tmp_path / "out" / "lift_overall.json").read_text())[0]
    assert overall["n_treated"] > 0 and overall["n_holdout"] > 0
    with (tmp_path / "out" / "report.html").open() as fh:
        assert "chart-return-rate" in fh.read()
    # the shop in a DuckDB warehouse beside the state, which holds none of its tables
    assert (tmp_path / "demo-warehouse.duckdb").exists()
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name IN ('customers', 'orders')").fetchall()
    # the suggested next command finds the warehouse beside the database, unasked
    customer = re.search(r"next: winback preview (\S+)", proc.stdout)
    assert customer is not None
    env["WINBACK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    preview = subprocess.run(
        [sys.executable, "-m", "winback.app.cli", "preview", customer.group(1)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert preview.returncode == 0, preview.stdout[-2000:] + preview.stderr[-2000:]
    assert "Subject:" in preview.stdout
    # `make demo` again: the earlier demo's state and warehouse are rebuilt (one true lift: no replayed history)
    again = subprocess.run(
        [sys.executable, "-m", "winback.app.cli", "demo", "--customers", "500", "--true-lift", "0.05",
         "--out", str(tmp_path / "out"), "--database", str(tmp_path / "demo.db")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "warehouse 500 customers" in again.stdout


def test_rerun_of_a_decided_run_does_not_decide_again(url: str, demo_engine: Engine) -> None:
    from winback.flows.campaign import winback_campaign

    config = CampaignConfig(campaign_id="flow-rerun", budget=1000.0)
    first = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    second = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    assert "decisions" in first and "decisions" not in second
    assert second["messages_queued"] == 0
    with demo_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CampaignRun)).scalar_one() == 1


def test_campaign_stores_model_version_diagnostics_and_calibration(url: str, demo_engine: Engine) -> None:
    from typer.testing import CliRunner

    from winback.app.cli import app
    from winback.flows.campaign import winback_campaign

    result = winback_campaign(config=CampaignConfig(campaign_id="calib", budget=500.0), as_of=AS_OF, now=AS_OF,
                              database_url_override=url)  # fmt: skip
    model = result["model"]
    assert len(model["version"]) == 12 and model["converged"] is True
    calibration = model["calibration"]
    assert calibration["holdout_days"] == 91 and calibration["customers"] > 0
    assert calibration["verdict"] in {"good", "fair", "poor"}
    buckets = calibration["by_frequency"]
    assert sum(b["customers"] for b in buckets) == calibration["customers"]
    # predicted and actual totals are consistent with the per-bucket means
    total_actual = sum(b["actual"] * b["customers"] for b in buckets)
    assert total_actual == pytest.approx(calibration["actual_total"], rel=1e-3)
    # the check's slice is the first customers in id order, whatever the run's batches
    from winback.stages.calibration_check import calibrate
    from winback.warehouse.source import SourceMapping, SourceTables

    src = SourceTables(SourceMapping())
    assert calibrate(demo_engine, src, AS_OF) == calibration
    smaller = calibrate(demo_engine, src, AS_OF, customers=500)
    assert 0 < smaller["customers"] <= 500 < calibration["customers"]
    shown = CliRunner().invoke(app, ["models", "show", "--campaign", "calib"], env={"WINBACK_DATABASE_URL": url})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["model"]["version"] == model["version"]


def _row_counts(engine: Engine) -> dict[str, int]:
    from winback.warehouse.models import Decision, Offer

    with engine.connect() as conn:
        return {
            t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (CampaignRun, Decision, Offer, OutboxMessage)
        }


def test_dry_run_writes_nothing_and_predicts_the_real_run(url: str, demo_engine: Engine) -> None:
    from winback.flows.campaign import winback_campaign

    config = CampaignConfig(campaign_id="dry", budget=3000.0, batch_size=800)
    before = _row_counts(demo_engine)
    preview = winback_campaign(config=config.model_copy(update={"dry_run": True}), as_of=AS_OF, now=AS_OF,
                               database_url_override=url)  # fmt: skip
    assert _row_counts(demo_engine) == before  # no run to resume, no offer, nothing for dispatch to send
    predicted = preview["dry_run"]
    assert predicted["decisions"]["contact"] > 0 and len(predicted["sample_reasons"]) == 5
    assert 0 < predicted["offer_cost"] <= config.budget

    real = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    assert real["decisions"] == predicted["decisions"]
    assert real["offers_issued"] == sum(predicted["offers"].values())
    assert real["messages_queued"] == predicted["decisions"]["contact"]


def test_a_retried_flow_run_resumes_its_campaign_run(
    url: str, demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No as-of given (as a scheduled deployment): the retry must not start a second campaign run.

    The first attempt dies once its decisions and codes are committed, before any message is queued: the
    retry keeps them (nothing decided or issued twice) and queues their messages.
    """
    from winback.flows.campaign import winback_campaign
    from winback.stages import decide_and_send
    from winback.warehouse.models import Decision, Offer

    queue = decide_and_send.queue_contacts
    calls: list[int] = []

    def crash_once(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("worker lost after deciding")
        return queue(*args, **kwargs)

    monkeypatch.setattr(decide_and_send, "queue_contacts", crash_once)
    config = CampaignConfig(campaign_id="retried", budget=3000.0, batch_size=800)
    flow = winback_campaign.with_options(retries=1, retry_delay_seconds=0)
    result = flow(config=config, now=AS_OF, database_url_override=url)
    assert len(calls) == 2 and result["offers_issued"] > 0
    with demo_engine.connect() as conn:
        run_ids = conn.execute(select(CampaignRun.id).where(CampaignRun.campaign_id == "retried")).scalars().all()
        decided = conn.execute(select(Decision.customer_id).where(Decision.run_id.in_(run_ids))).scalars().all()
        codes = conn.execute(select(func.count()).where(Offer.run_id.in_(run_ids))).scalar_one()
    assert run_ids == [result["run_id"]]
    assert len(decided) == len(set(decided)) == sum(result["decisions"].values())  # each once, by the first attempt
    assert codes == result["offers_issued"]
    assert result["messages_queued"] == result["decisions"]["contact"]  # queued by the retry, every contact


def test_a_run_dying_between_its_steps_resumes_to_what_its_dry_run_predicted(
    url: str, demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run read in one process is stored in steps (here of 300 customers); the first attempt dies once its
    third step's decisions and codes are committed. The re-run keeps the first two steps' messages and the
    three steps' decisions and codes, stores the rest, and ends as one uninterrupted run would."""
    from winback.flows.campaign import winback_campaign
    from winback.stages import decide_and_send
    from winback.warehouse.models import Decision, Offer

    monkeypatch.setattr(decide_and_send, "STEP", 300)
    config = CampaignConfig(campaign_id="steps", budget=3000.0, batch_size=800)
    predicted = winback_campaign(config=config.model_copy(update={"dry_run": True}), as_of=AS_OF, now=AS_OF,
                                 database_url_override=url)["dry_run"]  # fmt: skip
    queue, calls = decide_and_send.queue_contacts, []

    def dies_at_the_third(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("flow process lost")
        return queue(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(decide_and_send, "queue_contacts", dies_at_the_third)
    with pytest.raises(RuntimeError, match="flow process lost"):
        winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    with demo_engine.connect() as conn:
        first = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        first_codes = dict(conn.execute(select(Offer.customer_id, Offer.code)).all())
        first_queued = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        status = conn.execute(select(CampaignRun.status)).scalar_one()
    assert status == "started" and len(first) == 900 and first_queued > 0  # three steps stored, two queued
    monkeypatch.setattr(decide_and_send, "queue_contacts", queue)
    real = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    assert real["decisions"] == predicted["decisions"]
    assert real["offers_issued"] == sum(predicted["offers"].values())
    assert real["messages_queued"] + first_queued == predicted["decisions"]["contact"]
    with demo_engine.connect() as conn:
        decided = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        codes = dict(conn.execute(select(Offer.customer_id, Offer.code)).all())
        messages = conn.execute(select(OutboxMessage.customer_id, OutboxMessage.step)).all()
    assert len(decided) == sum(predicted["decisions"].values())
    assert {c: decided[c] for c in first} == first and {c: codes[c] for c in first_codes} == first_codes
    assert len(messages) == len({c for c, _ in messages}) == predicted["decisions"]["contact"]  # one each


def test_a_run_left_decided_by_an_older_winback_is_offered_queued_and_sent_by_the_flow(
    url: str, demo_engine: Engine
) -> None:
    """Before stages.decide_and_send, a run committed its decisions alone and moved to `decided`; an upgrade
    can meet such a run. The flow resumes it at its offers, deciding nothing again: a code for each offer
    decided, one message for each contact, sent."""
    from sqlalchemy.orm import Session
    from stage_runs import decide_only
    from test_campaign_path import SRC, read_and_score

    from winback.flows.campaign import winback_campaign
    from winback.stages import campaign as stages
    from winback.warehouse.models import Decision, Offer

    config = CampaignConfig(campaign_id="older", budget=3000.0, batch_size=800)
    with Session(demo_engine) as session, session.begin():
        run = stages.start_run(session, config, AS_OF)
    scored, failures, reach, model = read_and_score(demo_engine, config, AS_OF)
    counts = decide_only(demo_engine, run, (scored, failures, reach), config, model, src=SRC)
    with demo_engine.connect() as conn:
        decided = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        offered = select(Decision.customer_id).where(Decision.action == "contact", Decision.offer_kind != "none")
        owed = set(conn.execute(offered).scalars())
    assert counts["contact"] > 0 and owed

    result = winback_campaign(config=config, as_of=AS_OF, now=AS_OF, database_url_override=url)
    assert result["run_id"] == run.run_id
    assert result["offers_issued"] == len(owed) and result["messages_queued"] == counts["contact"]
    with demo_engine.connect() as conn:
        after = dict(conn.execute(select(Decision.customer_id, Decision.id)).all())
        coded = set(conn.execute(select(Offer.customer_id)).scalars())
        messages = conn.execute(select(OutboxMessage.customer_id, OutboxMessage.status)).all()
        status = conn.execute(select(CampaignRun.status).where(CampaignRun.id == run.run_id)).scalar_one()
    assert after == decided  # nothing decided again
    assert coded == owed
    assert len(messages) == len({c for c, _ in messages}) == counts["contact"]
    assert status == "sent" and {s for _, s in messages} <= {"sent", "queued", "skipped"}


def test_a_flow_run_by_a_command_on_a_temporary_server_sends_no_heartbeats() -> None:
    """`run_flow` (every command's, the demo's) turns heartbeats off only where nothing would read them."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from winback.app.commands.common import flow_run_settings, run_flow

    @flow
    def heartbeat_seconds() -> int | None:
        return PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()

    assert heartbeat_seconds() == PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 180  # Prefect's default, elsewhere
    assert run_flow(heartbeat_seconds) is None
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}), flow_run_settings():  # a real server
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 180
