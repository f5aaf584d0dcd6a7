"""When a failed task is worth another attempt: not when its input is wrong, which no retry changes."""

from __future__ import annotations

from typing import Any

from winback.errors import ConfigError, DataError


def unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """A task's `retry_condition_fn`: retry anything but a ConfigError or DataError.

    A bad mapping, setting, template or row fails the same way every time; retrying only delays the one
    line that says so.
    """
    return not isinstance(getattr(state, "data", None), ConfigError | DataError)
