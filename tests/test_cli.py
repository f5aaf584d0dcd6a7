"""The `winback` command's jobs that need no Prefect run: models fit, explain, preview, db upgrade."""

from __future__ import annotations

import json

import pytest
from conftest import AS_OF, CDNOW
from sqlalchemy import Engine
from typer.testing import CliRunner

from winback.app.cli import app

runner = CliRunner()


def test_models_fit_json_reproduces_the_published_cdnow_parameters() -> None:
    args = ["models", "fit", "--transactions", str(CDNOW), *["--customer-id", "customer_id", "--date", "date"]]
    result = runner.invoke(app, [*args, *["--amount", "amount", "--calibration-end", "1997-09-30", "--json"]])
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.output)["bgnbd"]
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fitted[name] == pytest.approx(value, rel=0.01), name
    assert fitted["log_likelihood"] == pytest.approx(-9582.4, abs=0.5)


def test_models_fit_names_a_missing_column() -> None:
    args = ["models", "fit", "--transactions", str(CDNOW), *["--customer-id", "client", "--date", "date", "--json"]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "client" in result.output


@pytest.fixture
def campaign_db(demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    from test_campaign_path import run_campaign

    from winback.config import CampaignConfig

    monkeypatch.setenv("WINBACK_DATABASE_URL", demo_engine.url.render_as_string(hide_password=False))
    run_campaign(demo_engine, CampaignConfig(campaign_id="cli", budget=1000.0))
    return demo_engine


def test_explain_and_preview_show_the_latest_decision_and_message(campaign_db: Engine) -> None:
    import pandas as pd
    from sqlalchemy import select

    from winback.warehouse.models import Decision, OutboxMessage

    with campaign_db.connect() as conn:
        decision = pd.read_sql(select(Decision.customer_id, Decision.reason).where(Decision.action == "contact"), conn)
        sent = pd.read_sql(
            select(OutboxMessage.customer_id, OutboxMessage.subject, OutboxMessage.step).where(
                OutboxMessage.status == "sent"
            ),
            conn,
        )
    customer, reason = decision.iloc[0]
    shown = runner.invoke(app, ["explain", customer], terminal_width=400)
    assert shown.exit_code == 0
    assert "contact" in shown.output
    assert " ".join(reason.split(";")[0].split()) in " ".join(shown.output.split())
    assert f"{AS_OF:%Y-%m-%d}" in shown.output

    customer, subject, _step = sent.iloc[0]
    previewed = runner.invoke(app, ["preview", "--customer", customer], terminal_width=400)
    assert previewed.exit_code == 0, previewed.output
    assert " ".join(subject.split()) in " ".join(previewed.output.split())  # exactly what was sent (rich wraps)
    assert "what is sent" in previewed.output and "if sent by sms" in previewed.output  # every channel
    assert "Reply STOP to opt out" in " ".join(previewed.output.split())


def test_explain_unknown_customer_exits_1(campaign_db: Engine) -> None:
    result = runner.invoke(app, ["explain", "NOPE"])
    assert result.exit_code == 1
    assert "no decision" in result.output


def test_consent_shows_records_and_opt_outs_with_source_and_time(campaign_db: Engine) -> None:
    import datetime as dt

    from sqlalchemy import text

    from winback.warehouse.suppressions import suppress

    with campaign_db.begin() as conn:
        customer, source = conn.execute(
            text("SELECT customer_id, source FROM consents WHERE channel = 'email' AND granted ORDER BY 1 LIMIT 1")
        ).one()
        suppress(conn, customer, "email", "unsubscribe", "list-unsubscribe one-click", AS_OF + dt.timedelta(days=1))
    shown = runner.invoke(app, ["consent", customer], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "granted" in flat and source in flat
    assert "opted out (unsubscribe)" in flat and "list-unsubscribe one-click" in flat
    assert runner.invoke(app, ["consent", "NOPE"]).exit_code == 1


def test_the_headline_says_when_the_window_is_still_open(capsys: pytest.CaptureFixture[str]) -> None:
    from winback.app.cli import print_overall

    row = {
        "n_treated": 900, "n_holdout": 100, "rate_treated": 0.12, "rate_holdout": 0.08, "abs_lift": 0.04,
        "abs_lift_low": 0.01, "abs_lift_high": 0.07, "incremental_revenue": 1234.5, "offer_cost": 100.0,
        "message_cost": 1.8, "warning": None,
    }  # fmt: skip
    print_overall(row, "Window open: 6.8 of 30 days observed.")
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.startswith("Window open: 6.8 of 30 days observed.")
    assert "Return so far (window still open)" in shown and "+4.0 pp" in shown
    print_overall(row)
    assert "Return within the attribution window" in " ".join(capsys.readouterr().out.split())
