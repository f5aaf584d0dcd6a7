"""Prefect's temporary server, started while a command does its own work instead of when its first flow asks.

Without `PREFECT_API_URL`, a flow's first call to Prefect starts a temporary server: a process that imports
Prefect's server and opens its database, about 4 s on this 2-core machine, during which the command waits.
A command that will run a flow starts it here, in a background thread, as soon as its settings and checks
have passed, so the server comes up while the command imports its flow and reads its input; `run_flow`
waits for it before the flow runs. The server is Prefect's own singleton (`SubprocessASGIServer()`), the one
the flow's client then finds running; nothing else about it changes (it stops when the process exits).
"""

from __future__ import annotations

import contextlib
import threading

_starting: threading.Thread | None = None


def start_in_background() -> None:
    """Start the temporary server now, unless a real one is configured or it is started already."""
    global _starting
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or _starting is not None:
        return
    # imported on this thread: the flow needs the module anyway, and two threads importing Prefect at once
    # could each see the other's modules half made
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()

    def start() -> None:
        with contextlib.suppress(Exception):  # the flow's own start tries again and reports a failure its way
            server.start()

    _starting = threading.Thread(target=start, name="winback-prefect-server", daemon=True)
    _starting.start()


def wait_until_started() -> None:
    """Wait for a start begun by `start_in_background`: Prefect's start is not safe to call twice at once."""
    if _starting is not None:
        _starting.join()
