"""`winback db`: winback's own tables."""

from __future__ import annotations

import typer

from winback.app.commands.common import load_settings, say, sqlite_file
from winback.errors import StateError

app = typer.Typer(help="winback's own tables.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Create or migrate winback's tables (Alembic) in WINBACK_DATABASE_URL.

    The one command that creates a SQLite database, and only in a folder that exists.
    """
    from winback.warehouse.db import make_engine
    from winback.warehouse.migrate import current
    from winback.warehouse.migrate import upgrade as migrate

    url = load_settings().database_url
    file = sqlite_file(url)
    if file is not None and not file.parent.is_dir():
        raise StateError(f"no folder {file.parent} for the SQLite database {file.name}: check WINBACK_DATABASE_URL")
    engine = make_engine(url)
    try:
        migrate(url, engine=engine)
        say(f"winback tables at revision {current(url, engine=engine)}" + (f" in {file}" if file else ""))
    finally:
        engine.dispose()
