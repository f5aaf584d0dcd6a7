"""stages.memory: the heap's free pages go back to the system (glibc), or nothing is done elsewhere."""

from __future__ import annotations

import gc
import platform

import pytest

from winback.stages.memory import release_free_memory

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not glibc, reason="malloc_trim is glibc's; elsewhere release_free_memory does nothing")
def test_freed_blocks_under_live_ones_go_back_to_the_system() -> None:
    """200 MiB of 1 KiB blocks freed, one in 64 kept: the freed pages stay resident until trimmed."""
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(200_000)]  # malloc'd, not pymalloc's
    kept = blocks[::64]
    del blocks
    gc.collect()
    before = _resident_mib()
    assert release_free_memory() is True
    after = _resident_mib()
    assert len(kept) == 3125
    assert before - after > 100, (before, after)  # most of the ~195 MiB freed was still resident


def test_without_glibc_nothing_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    from winback.stages import memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False
