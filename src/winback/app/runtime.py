"""Process settings that must be in place before Prefect is imported.

Why the ephemeral exit traceback happens, and the fix: with no PREFECT_API_URL, Prefect 3 starts a
temporary in-process server. At interpreter exit it stops that server while its task-run recorder
service may still be writing task-run states; the recorder's flush is cancelled mid-write and logs the
CancelledError traceback (a race: more tasks, more likely). winback records its own per-customer state
in its tables and needs no task-run history from a throwaway server, so in ephemeral mode the recorder
service is switched off: nothing is left to cancel. Against a real server (PREFECT_API_URL set) the
setting is left alone, and the traceback does not occur there. Telemetry is off: there is no internet.

Signals: Prefect stops its temporary server (a uvicorn child process) in an `atexit` handler, which Python's
default SIGTERM skips (the process dies on the spot), so `kill`, `docker stop` or a supervisor left that server
running. SIGTERM here exits as Ctrl-C does, through the exit handlers; `winback serve` too, as uvicorn hands
the signal back to this handler once it has shut down.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


def configure_prefect_environment() -> None:
    """Set the process environment Prefect reads at import; call before importing it.

    No telemetry, one BLAS thread, and in ephemeral mode no task-run recorder (see the module docstring).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
        # the temporary server's start/stop chatter is not for a user typing `winback report`; the command
        # prints its own result (a real server's runs keep Prefect's levels, set where the worker runs)
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    exit_cleanly_on_sigterm()


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM raises SystemExit (exit code 143), so exit handlers run: Prefect's temporary server is stopped.

    Only where SIGTERM still has Python's default (a handler someone installed is left alone), and only in
    the main thread, the one Python delivers signals to.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
