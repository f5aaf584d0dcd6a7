"""Run one function call in a fresh Python process: a second core for CPU-bound work of a flow.

Reading a million customers is Python work (the driver hands every row over holding the GIL), so two
reads in threads of one process take as long as one after the other. A child process takes one of
them. Not multiprocessing: its spawn and forkserver methods re-import the caller's `__main__` (a script
without a main guard would run again), and fork would copy a caller's threads (Prefect's) mid-flight.
The call and its result travel pickled over the child's stdin and stdout; the function must be
importable by name, its arguments and result picklable. Nothing secret goes on a command line.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
CHILD_COMMAND = [sys.executable, "-m", "winback.child_process"]


class ChildProcessError(RuntimeError):
    """The call failed in the child; the message carries the child's traceback."""


def child_env() -> dict[str, str]:
    """The current environment, with winback's own folder first on PYTHONPATH: a child imports this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}


def run_in_child(func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """`func(*args, **kwargs)`, computed in a new Python process; blocks until it returns.

    Called from a thread, it lets that thread's process get on with other work meanwhile (waiting on
    a pipe holds no GIL).
    """
    env = child_env()
    call = pickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    child = subprocess.run(CHILD_COMMAND, input=call, capture_output=True, env=env, check=False)
    if child.returncode != 0:
        raise ChildProcessError(
            f"{func.__module__}.{func.__qualname__} in child process exited with code {child.returncode}:\n"
            + child.stderr.decode(errors="replace")[-4000:]
        )
    ok, value = pickle.loads(child.stdout)
    if not ok:
        raise ChildProcessError(f"{func.__module__}.{func.__qualname__} failed in a child process:\n{value}")
    return value


def _child_main() -> None:
    """Read one pickled call from stdin, write (ok, result or traceback text) pickled to stdout."""
    func, args, kwargs = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything the call prints must not corrupt the result stream
    try:
        answer = (True, func(*args, **kwargs))
    except Exception:
        answer = (False, traceback.format_exc())
    out.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


if __name__ == "__main__":
    _child_main()
