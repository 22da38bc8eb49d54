"""The supervisor's pure restart decision and Procfile parsing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli.supervisor import Backoff, parse_procfile, specs_from_procfile

POLICY = Backoff(initial=1.0, factor=2.0, maximum=30.0, healthy_after=30.0)


def crash_loop(policy: Backoff, runs: list[float]) -> list[float]:
    """Feed a sequence of run lengths through the policy; return the delays."""
    failures, delays = 0, []
    for ran_for in runs:
        failures, delay = policy.after_exit(failures, ran_for)
        delays.append(delay)
    return delays


def test_quick_crashes_back_off_exponentially_up_to_the_cap() -> None:
    assert crash_loop(POLICY, [0.1] * 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_healthy_run_resets_the_backoff() -> None:
    # three quick crashes, then a run of 30 s counts as healthy: start over at 1 s
    assert crash_loop(POLICY, [0.1, 0.1, 0.1, 30.0, 0.1]) == [1, 2, 4, 1, 2]


def test_a_run_just_short_of_healthy_keeps_backing_off() -> None:
    assert crash_loop(POLICY, [0.1, 29.9]) == [1, 2]


@pytest.mark.parametrize(
    ("failures", "ran_for", "expected"),
    [(0, 0.0, (1, 1.0)), (4, 5.0, (5, 16.0)), (40, 0.0, (41, 30.0)), (9, 3600.0, (1, 1.0))],
)
def test_after_exit_table(failures: int, ran_for: float, expected: tuple[int, float]) -> None:
    assert POLICY.after_exit(failures, ran_for) == expected


def test_procfile_lines_parse_and_notebooks_runs_with_this_interpreter(tmp_path: Path) -> None:
    text = "# comment\n\nrelease: notebooks migrate\napi: notebooks api\nother: echo hi there\n"
    assert parse_procfile(text) == {
        "release": "notebooks migrate",
        "api": "notebooks api",
        "other": "echo hi there",
    }
    path = tmp_path / "Procfile"
    path.write_text(text)
    api, other = specs_from_procfile(path, ("api", "other"))
    assert api.argv == (sys.executable, "-m", "cli", "api")
    assert other.argv == ("echo", "hi", "there")


@pytest.mark.parametrize("line", ["api notebooks api", ": x", "api:   "])
def test_malformed_procfile_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError, match="Procfile line 1"):
        parse_procfile(line)


def test_the_repository_procfile_has_the_four_processes() -> None:
    procfile = Path(__file__).resolve().parents[3] / "Procfile"
    assert parse_procfile(procfile.read_text()) == {
        "release": "notebooks migrate",
        "api": "notebooks api",
        "worker": "notebooks worker",
        "proxy": "notebooks proxy",
    }
