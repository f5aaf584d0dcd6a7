"""A command starts Prefect's temporary server in the background (app/prefect_server.py); its flow waits for it."""

from __future__ import annotations

import threading
import time

import prefect.server.api.server as prefect_server_module
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from winback.app import prefect_server
from winback.app.commands.common import run_flow


class _SlowServer:
    """Stands in for Prefect's SubprocessASGIServer: its start takes a while and is noted, with its thread."""

    events: list[tuple[str, str]] = []
    fail = False

    def start(self) -> None:
        time.sleep(0.3)
        if self.fail:
            raise RuntimeError("the server did not come up")
        self.events.append(("server started", threading.current_thread().name))


@pytest.fixture
def slow_server(monkeypatch: pytest.MonkeyPatch) -> type[_SlowServer]:
    monkeypatch.setattr(prefect_server, "_starting", None)  # no start begun by an earlier test's command
    monkeypatch.setattr(prefect_server_module, "SubprocessASGIServer", _SlowServer)
    monkeypatch.setattr(_SlowServer, "events", [])
    return _SlowServer


def test_the_server_starts_in_the_background_and_the_flow_waits_for_it(slow_server: type[_SlowServer]) -> None:
    def flow() -> str:
        slow_server.events.append(("flow ran", threading.current_thread().name))
        return "done"

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        prefect_server.start_in_background()
        assert slow_server.events == []  # the command goes on while the server starts
        prefect_server.start_in_background()  # a second call starts nothing more
        assert run_flow(flow) == "done"
    assert slow_server.events == [("server started", "winback-prefect-server"), ("flow ran", "MainThread")]


def test_a_configured_server_is_left_to_itself(slow_server: type[_SlowServer]) -> None:
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        prefect_server.start_in_background()
    assert prefect_server._starting is None
    prefect_server.wait_until_started()  # nothing to wait for
    assert slow_server.events == []


def test_a_server_that_fails_to_start_is_left_for_the_flow_to_report(
    slow_server: type[_SlowServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_SlowServer, "fail", True)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        prefect_server.start_in_background()
        prefect_server.wait_until_started()  # no error here: the flow's own start tries again and reports it
    assert prefect_server._starting is not None and not prefect_server._starting.is_alive()
    assert slow_server.events == []
