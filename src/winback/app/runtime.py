"""Process settings that must be in place before Prefect is imported.

Why the ephemeral exit traceback happens, and the fix: with no PREFECT_API_URL, Prefect 3 starts a
temporary in-process server. At interpreter exit it stops that server while its task-run recorder
service may still be writing task-run states; the recorder's flush is cancelled mid-write and logs the
CancelledError traceback (a race: more tasks, more likely). winback records its own per-customer state
in its tables and needs no task-run history from a throwaway server, so in ephemeral mode the recorder
service is switched off: nothing is left to cancel. Against a real server (PREFECT_API_URL set) the
setting is left alone, and the traceback does not occur there. Telemetry is off: there is no internet.
"""

from __future__ import annotations

import os


def configure_prefect_environment() -> None:
    """Set the process environment Prefect reads at import; call before importing it.

    No telemetry, one BLAS thread, and in ephemeral mode no task-run recorder (see the module docstring).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
