"""The command line's own decisions: worker metrics port, settings errors."""

from __future__ import annotations

import pytest

from cli.database import CliError
from cli.main import main, metrics_port


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, 8082),
        (None, {"NOTEBOOKS_WORKER_METRICS_PORT": "9100"}, 9100),
        ("9200", {"NOTEBOOKS_WORKER_METRICS_PORT": "9100"}, 9200),
        ("off", {}, None),
        (None, {"NOTEBOOKS_WORKER_METRICS_PORT": "OFF"}, None),
        ("0", {}, 0),
    ],
)
def test_worker_metrics_port(flag: str | None, env: dict[str, str], expected: int | None) -> None:
    assert metrics_port(flag, env) == expected


@pytest.mark.parametrize("bad", ["-1", "70000", "http"])
def test_a_bad_metrics_port_is_refused(bad: str) -> None:
    with pytest.raises(CliError, match="metrics port"):
        metrics_port(bad, {})


@pytest.mark.parametrize("command", ["api", "worker", "proxy"])
def test_processes_refuse_to_start_without_settings(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command], environ={}) == 1
    assert "DATABASE_URL is not set" in capsys.readouterr().err


def test_short_keys_are_refused_with_the_variable_named(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DATABASE_URL": "postgresql:///x", "NOTEBOOKS_SECRET_KEY": "short"}
    assert main(["api"], environ=env) == 1
    assert "NOTEBOOKS_SECRET_KEY must be at least 32 characters" in capsys.readouterr().err
