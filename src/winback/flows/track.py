"""track_returns: daily; who came back, for every run whose attribution window is open or just closed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from winback.settings import Settings
from winback.warehouse.db import engine_for
from winback.warehouse.models import CampaignRun
from winback.warehouse.returns import track_run
from winback.warehouse.source import SourceTables
from winback.warehouse.timeutil import utc, utcnow


@task(cache_policy=NO_CACHE)
def runs_to_track(url: str, now: dt.datetime, window_days: int, run_id: int | None) -> list[int]:
    """`run_id` alone when given; else every run recent enough that its window may still be open."""
    if run_id is not None:
        return [run_id]
    since = now - dt.timedelta(days=window_days + 7)
    with engine_for(url).connect() as conn:
        return list(conn.execute(select(CampaignRun.id).where(CampaignRun.as_of >= since)).scalars())


@task(cache_policy=NO_CACHE)
def track(url: str, src: SourceTables, run_id: int, window_days: int, now: dt.datetime) -> int:
    """Rebuild one run's returns (who came back within its window); returns how many customers were measured."""
    engine = engine_for(url)
    with engine.begin() as conn, src.reader(engine).connect() as warehouse:
        return track_run(conn, src, run_id, window_days, now, warehouse=warehouse)


@flow(name="track-returns")
def track_returns(
    run_id: int | None = None,
    window_days: int = 30,
    now: dt.datetime | None = None,
    database_url_override: str | None = None,
    warehouse_url_override: str | None = None,
) -> dict[str, Any]:
    """Rebuild the returns of one run, or of every run still inside (or a week past) its window."""
    settings = Settings()
    url = database_url_override or settings.database_url
    # once for every run tracked
    src = SourceTables.from_settings(settings, database_url=url, warehouse_url=warehouse_url_override)
    now = utc(now or utcnow())
    tracked = {rid: track(url, src, rid, window_days, now) for rid in runs_to_track(url, now, window_days, run_id)}
    return {"tracked": tracked}
