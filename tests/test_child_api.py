"""flows.child_api: the processes a flow starts (Dask workers, senders) report to the flow's own Prefect API."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings

from winback.flows.child_api import same_api_for_children


@flow
def _api_handed_down() -> tuple[str | None, str | None]:
    with same_api_for_children():
        inside = PREFECT_API_URL.value()
    return inside, PREFECT_API_URL.value()


def test_an_ephemeral_flow_hands_its_temporary_servers_address_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    inside, after = _api_handed_down()
    assert inside == SubprocessASGIServer().api_url  # the one the flow runs on: no server per process
    assert inside.startswith("http://127.0.0.1:")
    assert not after  # only for what is submitted inside


def test_a_real_servers_address_is_left_as_it_is() -> None:
    with temporary_settings({PREFECT_API_URL: "http://prefect.example:4200/api"}), same_api_for_children():
        assert PREFECT_API_URL.value() == "http://prefect.example:4200/api"
