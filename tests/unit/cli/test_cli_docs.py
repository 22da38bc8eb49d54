"""docs/operations.md stays true: every setting a process reads is in its table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def variables(*paths: str) -> set[str]:
    found: set[str] = set()
    for path in paths:
        text = (ROOT / path).read_text()
        found |= set(re.findall(r'"(NOTEBOOKS_[A-Z0-9_]+|DATABASE_URL)"', text))
    return found


def test_every_setting_is_documented_in_the_operations_table() -> None:
    read = variables("common/settings.py", "cli/main.py", "cli/up.py", "cli/bootstrap.py")
    assert {"DATABASE_URL", "NOTEBOOKS_API_PORT", "NOTEBOOKS_WORKER_METRICS_PORT"} <= read
    table = {
        line.split("|")[1].strip().strip("`")
        for line in (ROOT / "docs/operations.md").read_text().splitlines()
        if line.startswith("| `")
    }
    assert read - table == set()
