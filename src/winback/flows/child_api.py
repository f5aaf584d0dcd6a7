"""Where the processes a flow starts report their task runs: the flow's own Prefect API.

Without a `PREFECT_API_URL`, Prefect starts a temporary server per process: each Dask worker reading a
partition and each sender process would start its own (seconds each, one database file each, and runs
recorded where nobody looks). The address of the flow's own temporary server is handed down with the tasks'
settings instead. Processes on other machines cannot reach a temporary server on 127.0.0.1: a cluster or
workers across machines go with a real Prefect server (docs/scale.md).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from prefect.settings import PREFECT_API_URL, temporary_settings


def same_api_for_children() -> AbstractContextManager[object]:
    """Settings under which the tasks submitted to other processes report to this flow's API."""
    if PREFECT_API_URL.value():
        return nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one this process already runs for its flow (a singleton per port)
    server.start()
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})
