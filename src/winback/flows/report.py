"""retention_report: weekly, the lift report as files and as Prefect artifacts with stable keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from winback.config import CampaignConfig
from winback.reports.build import build_report, choose_report_run, headline_markdown
from winback.reports.html import ReportData, window_status, write_report_bundle
from winback.settings import Settings
from winback.warehouse.db import engine_for
from winback.warehouse.source import SourceTables


@task(cache_policy=NO_CACHE)
def assemble(url: str, src: SourceTables, run_id: int | None, config: CampaignConfig, notes: list[str]) -> ReportData:
    """The given run's report; without one, the latest run whose window has closed (see choose_report_run).

    Mondays at 07:00 the latest run is last Monday's, a week into its window: reporting it by default
    would present a week of returns as the campaign's result.
    """
    engine = engine_for(url)
    with engine.connect() as conn, src.reader(engine).connect() as warehouse:
        if run_id is None:
            choice = choose_report_run(conn, config.campaign_id)
            run_id, notes = choice.run_id, [*choice.notes, *notes]
        return build_report(conn, src, run_id, config, notes, warehouse=warehouse)


@task(cache_policy=NO_CACHE)
def write_files(report: ReportData, out_dir: str) -> list[str]:
    """Write the report's files (HTML, CSV, JSON) under `out_dir`; returns their paths."""
    return [str(p) for p in write_report_bundle(report, Path(out_dir))]


@task(cache_policy=NO_CACHE)
def publish_artifacts(report: ReportData) -> list[str]:
    """Keyed artifacts, so each week's version lines up in the Prefect UI."""
    slug = re.sub(r"[^a-z0-9-]+", "-", report.campaign_id.lower()).strip("-")
    keys = []
    create_markdown_artifact(
        key=f"{slug}-retention-summary",
        markdown=headline_markdown(report),
        description="Return rates, lift with 95% CI, revenue vs cost",
    )
    keys.append(f"{slug}-retention-summary")
    tables = {
        "lift-overall": report.overall,
        **{f"lift-{k.replace('_', '-')}": v for k, v in report.breakdowns.items()},
    }
    if report.root_causes is not None:
        tables["root-causes"] = report.root_causes
    for name, frame in tables.items():
        key = f"{slug}-{name}"
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        create_table_artifact(key=key, table=records, description=f"{report.title}: {name}")
        keys.append(key)
    return keys


@flow(name="retention-report")
def retention_report(
    config: CampaignConfig | None = None,
    run_id: int | None = None,
    out_dir: str = "reports_out",
    notes: list[str] | None = None,
    database_url_override: str | None = None,
    warehouse_url_override: str | None = None,
) -> dict[str, Any]:
    """Report a campaign's run: HTML + CSV/JSON files and Prefect artifacts.

    Without `run_id`, the latest run whose attribution window has closed and been tracked since (else the
    latest tracked run, with a note). `window_open` in the result is the report's "window open" banner,
    None when the window was observed in full.
    """
    config = config or CampaignConfig()
    settings = Settings()
    url = database_url_override or settings.database_url
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url_override)
    report = assemble(url, src, run_id, config, notes or [])
    files = write_files(report, out_dir)
    keys = publish_artifacts(report)
    return {
        "files": files,
        "artifacts": keys,
        "overall": report.overall.to_dict("records"),
        "period": [str(report.period_start), str(report.period_end)],
        "window_open": window_status(report),
        "notes": report.notes,
    }
