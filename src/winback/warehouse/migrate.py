"""`winback db upgrade`: Alembic, configured in code so it works from any directory and inside a wheel."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from winback.warehouse.db import make_engine


def _alembic_config(url: str) -> Config:
    """Alembic's configuration for winback's migrations against `url`, without an alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", "winback.warehouse:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", engine: Engine | None = None) -> None:
    """Bring winback's tables to `revision`; safe to run repeatedly."""
    cfg = _alembic_config(url)
    engine = engine or make_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(url: str, engine: Engine | None = None) -> str | None:
    """The revision the tables are at (None: winback's tables were never created there)."""
    from alembic.runtime.migration import MigrationContext

    with (engine or make_engine(url)).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    """The newest revision this code knows: what `upgrade` brings the tables to."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
