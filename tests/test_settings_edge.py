"""Settings are read at the edge (app/, flows/) and handed down: no module below them calls `Settings()`.

A module that reads the environment itself ignores what its caller was configured with (a test's settings,
a flow's overrides) and hides a dependency. NOT_YET names the modules that still do, each with why; an entry
goes as soon as its module stops, so the list only shrinks (the second test fails on a stale entry).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "winback"
EDGE = ("app", "flows")  # the CLI, the server, the demo and the Prefect flows read the settings

NOT_YET = {
    # rewritten by other helpers this session: they pass their settings down themselves
    "stages/campaign.py": "SourceTables.from_settings(Settings()) when a caller passes no source tables",
    # fallbacks kept only for those callers (delivery/dispatch.py, stages/campaign.py), not for new code
    "delivery/settle.py": "UnknownPolicy.from_env(): reconcile() without a policy from stages/campaign.py",
    "delivery/checks.py": "send_time_source(engine) without tables, from delivery/dispatch.py's send_due",
    "messages/unsubscribe.py": "configured_links(), for delivery/dispatch.py's send_due called without links",
}


def settings_calls(path: Path) -> list[int]:
    """The lines of `path` that call `Settings(...)` (by name or as an attribute)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name == "Settings":
                calls.append(node.lineno)
    return sorted(calls)


def below_the_edge() -> Iterator[tuple[str, Path]]:
    """Every module of the package outside app/, flows/ and settings.py, by its path inside the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.split("/")[0] not in EDGE and relative != "settings.py":
            yield relative, path


def test_no_module_below_the_edge_reads_the_settings() -> None:
    found = [
        f"src/winback/{relative}:{line}"
        for relative, path in below_the_edge()
        if relative not in NOT_YET
        for line in settings_calls(path)
    ]
    assert found == [], "take the setting as an argument and pass it from app/ or flows/"


def test_not_yet_names_only_modules_that_still_read_the_settings() -> None:
    modules = dict(below_the_edge())
    stale = [relative for relative in NOT_YET if relative not in modules or not settings_calls(modules[relative])]
    assert stale == [], "converted: remove these from NOT_YET"


def test_the_check_finds_a_settings_call(tmp_path: Path) -> None:
    module = tmp_path / "lower.py"
    module.write_text(
        "from winback import settings\nfrom winback.settings import Settings\n\n"
        "def path(given=None):\n    return given or Settings().sink_path\n\n"
        "def url():\n    return settings.Settings().database_url\n"
    )
    assert settings_calls(module) == [5, 8]
    assert any(relative == "stages/recovery.py" for relative, _ in below_the_edge())
    assert not any(relative.startswith(("app/", "flows/")) for relative, _ in below_the_edge())
