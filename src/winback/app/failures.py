"""Expected failures, said in one line: what the CLI prints (exit code 2) and the server logs.

An expected failure is one the user can act on from its message alone: a WinbackError, a bad value or
file (ValueError, OSError, a pydantic ValidationError), the database refusing (SQLAlchemy and its
drivers), or Prefect unable to run a flow. Anything else is a bug and keeps its traceback.

Flows run in-process when no Prefect server is set, and Prefect logs a failing task's and flow's
traceback before the exception reaches the CLI; `hide_expected_tracebacks` drops exactly those records
for expected exceptions, so the CLI's one line is all the user sees.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any

from winback.errors import WinbackError

PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")
_FAILED_STATE = re.compile(r"encountered an exception:? (\w+)")


def expected_types() -> tuple[type[BaseException], ...]:
    """The exception types the CLI and the server turn into one line (imported late: Prefect is slow)."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    types: list[type[BaseException]] = [WinbackError, ValueError, OSError, ValidationError, SQLAlchemyError]
    types.append(sqlite3.Error)
    try:
        import psycopg

        types.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    try:
        from prefect.exceptions import PrefectException

        types.append(PrefectException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def is_expected(exc: BaseException) -> bool:
    """Whether `exc` is a failure the user can act on from its message (see the module docstring)."""
    return isinstance(exc, expected_types())


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line safe to show an operator.

    The driver's own words for a database error (never the statement or its parameters), each offending
    field for a validation error, the message otherwise.
    """
    from pydantic import ValidationError

    from winback.warehouse.db import error_line

    if isinstance(exc, ValidationError):
        return validation_line(exc)
    first = error_line(exc)
    if type(exc).__name__ == "ArgumentError" and "URL" in first:
        first += ": check WINBACK_DATABASE_URL"
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        first += ": run `winback db upgrade`, and check WINBACK_SOURCE_MAPPING names your tables"
    return first


def validation_line(exc: Any) -> str:
    """A pydantic ValidationError in one line, naming each offending field and value.

    Formatted as `WINBACK_SMS_RATE: '0': must be above zero; ...` (the field's name is its environment
    variable for Settings).
    """
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or exc.title
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(message if message.startswith(f"{where}=") else f"{where}: {message}")
    return "; ".join(parts) or str(exc).splitlines()[0]


class _HideExpected(logging.Filter):
    """Drops Prefect's records about an expected exception: its traceback and the failed state naming it."""

    def __init__(self) -> None:
        super().__init__("winback.hide-expected")
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_expected(exc):
            self.seen.add(type(exc).__name__)
            return False
        if record.levelno >= logging.ERROR and "Finished in state" in record.getMessage():
            named = _FAILED_STATE.search(record.getMessage())
            return not (named and named.group(1) in self.seen)
        return True


_FILTER = _HideExpected()


def hide_expected_tracebacks() -> None:
    """Keep Prefect from logging tracebacks of expected failures.

    Call after Prefect is imported: its logging set-up replaces the loggers' filters.
    """
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
