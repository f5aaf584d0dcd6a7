"""docs/cli.md's settings table names every WINBACK_* setting the Settings class reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from winback.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_every_winback_setting_is_documented_and_every_documented_one_exists() -> None:
    read = {
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if str(field.validation_alias).startswith("WINBACK_")
    }
    documented = set(re.findall(r"^\| `(WINBACK_[A-Z_]+)`", DOCS.read_text(), flags=re.M)) - {"WINBACK_HOME"}
    assert read - documented == set(), f"settings missing from docs/cli.md: {sorted(read - documented)}"
    assert documented - read == set(), f"docs/cli.md documents settings that do not exist: {sorted(documented - read)}"
