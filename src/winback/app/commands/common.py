"""What every command shares: the console, the common options, the settings, the database check, money.

Heavy imports (SQLAlchemy models, pandas, Prefect) stay inside the functions: `winback --help` and a
command that finds nothing to do must not pay for them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from winback.app import prefect_server
from winback.errors import ConfigError, StateError
from winback.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from winback.config import CampaignConfig
    from winback.warehouse.source import SourceTables

console = Console()
R = TypeVar("R")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="campaign YAML (see examples/)")]  # noqa: UP045
AsOfOpt = Annotated[Optional[dt.datetime], typer.Option("--as-of", help="decision time (UTC); default now")]  # noqa: UP045
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON, for machines")]
REPORT_LOCALE = "en_US"  # the HTML report's: the same money reads the same everywhere


def load_settings() -> Settings:
    """The settings of this command, read once (a bad value: one line naming the variable, exit 2)."""
    return Settings()


def campaign_config(path: Path | None) -> CampaignConfig:
    """The campaign file's configuration (its policy checked at once), or the defaults."""
    from winback.app.campaign_file import load_campaign

    return load_campaign(path)


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """An option's datetime as aware UTC (a naive one is taken as UTC); None stays None."""
    from winback.warehouse.timeutil import utc as as_utc

    return as_utc(value) if value else None


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    name = parsed.database if parsed.get_backend_name() == "sqlite" else None
    return None if name in (None, "", ":memory:") else Path(name)


@contextmanager
def open_database(
    settings: Settings, *, source_tables: bool = False, migrated: bool = True
) -> Iterator[tuple[Engine, SourceTables]]:
    """An engine on the configured database, refused before any work if winback has not set it up.

    A SQLite file that is not there is never created (a typo must not become an empty database: only
    `winback db upgrade` and `winback demo` create one). `migrated`: winback's tables at the latest
    revision. `source_tables`: the business's tables (as WINBACK_SOURCE_MAPPING names them) there too.
    Yields the engine and the source tables, built once for the command.
    """
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import current, head
    from winback.warehouse.source import SourceTables

    file = sqlite_file(settings.database_url)
    if file is not None and not file.exists():
        raise StateError(
            f"no SQLite database at {file}: check WINBACK_DATABASE_URL, or create it with `winback db upgrade`"
        )
    src = SourceTables.from_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        if migrated:
            at, latest = current(settings.database_url, engine=engine), head()
            if at != latest:
                raise StateError(
                    f"winback's tables are at revision {at or 'none'}, not {latest}: run `winback db upgrade`"
                )
        if source_tables:
            missing = _missing_in_warehouse(src.reader(engine), src)
            if missing:
                hint = "set WINBACK_SOURCE_MAPPING to name your tables (see examples/), or run `winback demo-data`"
                raise ConfigError(f"source table(s) not found: {', '.join(missing)}: {hint}")
        yield engine, src
    finally:
        engine.dispose()


def _missing_in_warehouse(warehouse: Engine, src: SourceTables) -> list[str]:
    """The source tables the warehouse lacks; an unreachable warehouse is one line naming its URL (masked)."""
    from sqlalchemy.exc import DBAPIError

    from winback.warehouse.db import error_line
    from winback.warehouse.source import missing_tables

    try:
        return missing_tables(warehouse, (src.customers, src.orders, src.failures, src.consents))
    except DBAPIError as exc:
        where = warehouse.url.render_as_string(hide_password=True)
        problem = error_line(exc)
        raise ConfigError(f"warehouse unreachable at {where} ({problem}): check WINBACK_WAREHOUSE_URL") from None


def check_database(settings: Settings, *, source_tables: bool = False) -> None:
    """`open_database`'s checks alone, for a command whose flow opens its own engine."""
    with open_database(settings, source_tables=source_tables):
        pass


def check_channels(settings: Settings) -> None:
    """Refuse a half-configured provider now, in one line, rather than inside a flow run."""
    from winback.delivery.registry import configured_channels

    configured_channels(settings)


def run_flow(flow: Callable[..., R], **parameters: Any) -> R:
    """Call a flow in this process; an expected failure inside it surfaces as one line, not Prefect's logs."""
    from winback.app.failures import hide_expected_tracebacks

    hide_expected_tracebacks()
    prefect_server.wait_until_started()
    with flow_run_settings():
        return flow(**parameters)


@contextmanager
def flow_run_settings() -> Iterator[None]:
    """Prefect's settings for a flow called here: on a temporary server, no flow-run heartbeats.

    A heartbeat tells a real server (PREFECT_API_URL) that a run's process is alive, so that a run whose
    process died can be marked crashed. A temporary server lives and dies with this process: nobody is
    told anything, and a synchronous flow's end waits for its heartbeat thread's one-second sleep (1.0 s
    against 0.03 s a flow, measured; `make demo` calls twenty). Against a real server nothing changes.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def print_json(result: Any) -> None:
    """Machine output: the result as JSON on stdout, nothing else."""
    typer.echo(json.dumps(result, indent=2, default=str))


def money(value: Any, currency: str) -> str:
    """`€12.30` (babel, as the HTML report); rounded to the cent first, so never `€-0.00`."""
    from babel.numbers import format_currency

    if value is None:
        return "-"
    cents = round(float(value), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return format_currency(cents, currency, locale=REPORT_LOCALE)


def points(share: Any) -> str:
    """A difference of two rates in percentage points: `+4.0 pp` (never `-0.0 pp`)."""
    if share is None:
        return "-"
    return f"{round(float(share) * 100, 1) + 0.0:+.1f} pp"


def say(text: str) -> None:
    """A line of output that is plain text (no rich markup in it is interpreted)."""
    console.print(escape(text), soft_wrap=True)


def counts(values: dict[str, Any]) -> str:
    """`sent 12 · skipped 3`: a result's counts in one line."""
    return " · ".join(f"{key} {int(n):,}" for key, n in values.items() if isinstance(n, int | float)) or "nothing"
