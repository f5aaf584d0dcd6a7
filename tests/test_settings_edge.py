"""Settings are read at the edge (app/, flows/) and handed down: no module below them calls `Settings()`.

A module that reads the environment itself ignores what its caller was configured with (a test's settings,
a flow's overrides) and hides a dependency: it takes what it needs as an argument instead (`*.from_settings`
built at the edge), with no fallback that reads the settings when a caller passes nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "winback"
EDGE = ("app", "flows")  # the CLI, the server, the demo and the Prefect flows read the settings


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
    found = [f"src/winback/{relative}:{line}" for relative, path in below_the_edge() for line in settings_calls(path)]
    assert found == [], "take the setting as an argument and pass it from app/ or flows/"


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
