"""winback.child_process: one call computed in a fresh Python process, its result or its failure returned."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF
from sqlalchemy import Engine
from test_campaign_path import SRC

from winback.child_process import ChildProcessError, run_in_child
from winback.stages import campaign as stages


@pytest.fixture(autouse=True)
def _functions_of_this_file_importable_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))


def _child_pid_and_frame(n: int) -> tuple[int, pd.DataFrame]:
    print("chatter on stdout must not corrupt the result")
    return os.getpid(), pd.DataFrame({"x": range(n), "name": [f"c{i}" for i in range(n)]})


def _fails(reason: str) -> None:
    raise ValueError(reason)


def _dies() -> None:
    os._exit(3)


def test_the_call_runs_in_another_process_and_returns_its_result() -> None:
    pid, frame = run_in_child(_child_pid_and_frame, 1000)
    assert pid != os.getpid()
    pd.testing.assert_frame_equal(frame, _child_pid_and_frame(1000)[1])


def test_an_exception_in_the_child_is_raised_with_its_traceback() -> None:
    with pytest.raises(ChildProcessError, match=r"(?s)_fails failed in a child process.*ValueError: bad batch 7"):
        run_in_child(_fails, "bad batch 7")


def test_a_child_that_dies_is_reported_with_its_exit_code() -> None:
    with pytest.raises(ChildProcessError, match=r"_dies in child process exited with code 3"):
        run_in_child(_dies)


def test_summaries_computed_in_a_child_equal_the_whole_warehouse_read_here(demo_engine: Engine) -> None:
    url = demo_engine.url.render_as_string(hide_password=False)
    batches = stages.plan_batches(demo_engine, SRC, 700)
    assert len(batches) > 1
    elsewhere = run_in_child(stages.summarise_batches, url, SRC, AS_OF, batches)
    here = stages.summarise_batch(demo_engine, SRC, AS_OF, (None, None))
    pd.testing.assert_frame_equal(elsewhere, here)
