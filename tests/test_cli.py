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
    flat = " ".join(shown.output.split())
    assert "contact" in flat
    assert " ".join(reason.split(";")[0].split()) in flat
    assert f"{AS_OF:%Y-%m-%d}" in flat
    # the figures a marketer reads: money in the campaign's currency, the lift in percentage points
    assert "expected gain €" in flat and "offer cost €" in flat and " pp" in flat
    assert "pts" not in flat and "€-0.00" not in flat

    customer, subject, _step = sent.iloc[0]
    for args in (["preview", customer], ["preview", "--customer", customer]):  # --customer: the old spelling
        previewed = runner.invoke(app, args, terminal_width=400)
        assert previewed.exit_code == 0, previewed.output
        assert " ".join(subject.split()) in " ".join(previewed.output.split())  # exactly what was sent (rich wraps)
        assert "what is sent" in previewed.output and "if sent by sms" in previewed.output  # every channel
        assert "Reply STOP to opt out" in " ".join(previewed.output.split())


def test_explain_tells_a_made_up_id_from_a_customer_in_no_segment(campaign_db: Engine) -> None:
    from sqlalchemy import text

    made_up = runner.invoke(app, ["explain", "NOPE"])
    assert made_up.exit_code == 1
    assert "'NOPE' is not a customer" in made_up.output
    with campaign_db.connect() as conn:
        undecided = conn.execute(
            text("SELECT customer_id FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM wb_decisions)")
        ).scalar()
    assert undecided is not None
    known = runner.invoke(app, ["explain", undecided], terminal_width=400)
    assert known.exit_code == 1
    assert f"customer {undecided}: no decision yet: in no segment" in " ".join(known.output.split())
    assert runner.invoke(app, ["preview", "NOPE"]).output.startswith("'NOPE' is not a customer")


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
    from winback.app.commands.report import print_overall

    row = {
        "n_treated": 900, "n_holdout": 100, "rate_treated": 0.12, "rate_holdout": 0.08, "abs_lift": 0.04,
        "abs_lift_low": 0.01, "abs_lift_high": 0.07, "incremental_revenue": 1234.5, "offer_cost": 100.0,
        "message_cost": -0.0001, "warning": None,
    }  # fmt: skip
    print_overall(row, "Window open: 6.8 of 30 days observed.", "EUR")
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.startswith("Window open: 6.8 of 30 days observed.")
    assert "Return so far (window still open)" in shown and "+4.0 pp" in shown
    assert "incremental revenue €1,234.50" in shown and "messaging €0.00" in shown  # with its currency, never -0
    print_overall(row, currency="GBP")
    shown = " ".join(capsys.readouterr().out.split())
    assert "Return within the attribution window" in shown and "offer cost £100.00" in shown


def test_a_dry_run_reads_as_tables_with_money_in_its_currency(capsys: pytest.CaptureFixture[str]) -> None:
    from winback.app.commands.runs import print_dry_run

    preview = {
        "decisions": {"contact": 700, "holdout": 78, "skip": 583},
        "by_segment_and_action": {"lapsed/contact": 685, "aggrieved/contact": 15, "lapsed/holdout": 78,
                                  "lapsed/skip": 583},
        "contacts_by_segment_and_channel": {"lapsed/email": 614, "lapsed/sms": 71, "aggrieved/email": 15},
        "offers": {"percent_discount": 159, "store_credit": 9}, "offer_cost": 319.584, "budget": 5000.0,
        "lift_used": {"percent_discount": 0.04, "store_credit": 0.06}, "sample_reasons": ["contact: lapsed, ..."],
    }  # fmt: skip
    print_dry_run({"campaign_id": "spring", "as_of": "2026-12-01T10:00:00+00:00", "dry_run": preview}, "EUR")
    shown = capsys.readouterr().out
    flat = " ".join(shown.split())
    assert "Dry run: spring as of 2026-12-01 (nothing written or sent)" in flat
    assert "lapsed │ contact │ 685" in flat and "all │ all │ 1,361" in flat  # per segment and action, and the total
    assert "lapsed │ sms │ 71" in flat and "percent_discount │ 159 │ +4.0 pp" in flat
    assert "expected offer cost €319.58 of the €5,000.00 budget" in flat
    assert "{" not in shown and "timings" not in shown  # not the raw JSON any more (that is --json)


def test_a_campaign_and_a_dry_run_print_the_quarantine_line(capsys: pytest.CaptureFixture[str]) -> None:
    from winback.app.commands.runs import print_campaign, print_dry_run

    line = "3 source rows quarantined: `winback quality --run-id 7`"
    print_campaign({"campaign_id": "c", "run_id": 7, "as_of": "2026-11-02T10:00", "decisions": {}, "quarantine": line})
    preview = {"decisions": {"contact": 1}, "contacts_by_segment_and_channel": {}, "offers": {}, "offer_cost": 0.0}
    preview["budget"] = 10.0
    dry = "3 source rows quarantined: not stored (dry run)"
    print_dry_run({"campaign_id": "c", "as_of": "2026-11-02T10:00", "dry_run": preview, "quarantine": dry}, "EUR")
    out = capsys.readouterr().out
    assert line in out and dry in out
