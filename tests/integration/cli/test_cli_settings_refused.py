"""A malformed setting stops the command before it starts anything, with one
line naming the variable and what it accepts (no traceback, exit code 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main

NOTEBOOKS = str(Path(sys.executable).parent / "notebooks")


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DATABASE_URL" and not k.startswith("NOTEBOOKS_")
    }
    return {**env, "NOTEBOOKS_DATA_DIR": str(data_dir), **settings}


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        # used to die in the port check with an OverflowError traceback
        ("NOTEBOOKS_API_PORT", "70000", "NOTEBOOKS_API_PORT must be a port number (0..65535)"),
        # used to log in colour, silently
        (
            "NOTEBOOKS_LOG_FORMAT",
            "jsonl",
            "NOTEBOOKS_LOG_FORMAT must be one of auto, json, console",
        ),
        # used not to say what it got
        ("NOTEBOOKS_RUNTIME", "Local", "NOTEBOOKS_RUNTIME must be local or kubernetes"),
    ],
)
def test_up_refuses_a_malformed_setting_before_starting_anything(
    pg_tmp: Path, variable: str, raw: str, message: str
) -> None:
    data_dir = pg_tmp / "data"
    done = subprocess.run(
        [NOTEBOOKS, "up"],
        env=clean_env(data_dir, **{variable: raw}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [f"notebooks up: error: {message}, got {raw!r}"]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not data_dir.exists()  # nothing made, no database started


@pytest.mark.parametrize("command", ["api", "worker", "proxy", "migrate"])
def test_every_process_refuses_a_malformed_setting_in_one_line(
    command: str, pg_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "DATABASE_URL": "postgresql:///unused",
        "NOTEBOOKS_SECRET_KEY": "m" * 40,
        "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
        "NOTEBOOKS_DATA_DIR": str(pg_tmp / "data"),
        "NOTEBOOKS_LOG_LEVEL": "verbose",
    }
    assert main([command], environ=env) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"notebooks {command}: error: NOTEBOOKS_LOG_LEVEL must be one of debug, info, "
        "warning, error, critical, got 'verbose'"
    ]
