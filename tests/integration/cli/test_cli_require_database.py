"""NOTEBOOKS_REQUIRE_DATABASE_URL (set by ops/k8s): a release Job or pod whose
Secret lacks DATABASE_URL fails with one line, instead of migrating or
serving a throwaway embedded PostgreSQL and "succeeding"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

COMMANDS = [
    ["migrate"],
    ["admin", "org", "list"],
    ["up"],
    ["api"],
    ["worker"],
    ["proxy"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv))
def test_every_database_command_refuses_without_database_url(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "NOTEBOOKS_REQUIRE_DATABASE_URL": "true",
        "NOTEBOOKS_DATA_DIR": str(tmp_path / "data"),
        # `up` checks its ports first: OS-given ones, never a running stack's
        "NOTEBOOKS_API_PORT": "0",
        "NOTEBOOKS_PROXY_PORT": "0",
        "NOTEBOOKS_API_METRICS_PORT": "off",
        "NOTEBOOKS_PROXY_METRICS_PORT": "off",
        "NOTEBOOKS_WORKER_METRICS_PORT": "off",
    }
    assert main(argv, environ=env) == 1
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "error:" in ln]
    assert "DATABASE_URL is not set" in line
    assert not (tmp_path / "data" / "pg").exists()  # no embedded PostgreSQL was made
