"""What of a component's output is kept and shown (common/notebook_logs.py)."""

from __future__ import annotations

from pathlib import Path

from common.notebook_logs import PROBLEM_CHARS, problem_text, readable, redacted
from reconciler.runtime.procs import last_bytes


def test_a_long_output_keeps_its_end_from_a_whole_line() -> None:
    data = b"".join(b"line %d\n" % i for i in range(100))
    kept = readable(data, max_bytes=40)
    assert kept == "line 95\nline 96\nline 97\nline 98\nline 99\n"
    assert readable(data, max_bytes=42) == kept  # the rest of line 94 dropped
    assert readable(b"short\n", max_bytes=40) == "short\n"
    # A last line longer than what is kept is kept cut, not dropped.
    assert readable(b"a\n" + b"x" * 50, max_bytes=10) == "x" * 10


def test_terminal_codes_and_what_a_text_column_refuses_are_removed() -> None:
    coloured = b"\x1b[32mINFO\x1b[0m ready\r\n\x1b]0;title\x07done\x00\x07\tok\n"
    assert readable(coloured) == "INFO ready\ndone\tok\n"
    # A progress bar's redraws become lines; bytes that are not UTF-8 stay visible.
    assert readable(b"10%\r50%\r100%\n\xff\n") == "10%\n50%\n100%\n\ufffd\n"


def test_secrets_and_url_tokens_are_blanked() -> None:
    text = "connect postgres://u:longsecret@db?token=abc123&x=1 with longsecret-2"
    assert redacted(text, ("longsecret", "longsecret-2", "abc", "")) == (
        "connect postgres://u:***@db?token=***&x=1 with ***"
    )


def test_a_secret_cut_at_the_start_of_a_long_line_is_blanked_too() -> None:
    # One line longer than what is kept: the kept part may begin inside a secret.
    line = b"x" * 100 + b"connection-password-9 ok\n"
    assert readable(line, ("connection-password-9",), max_bytes=16) == "*** ok\n"
    assert readable(line, (), max_bytes=16) == "n-password-9 ok\n"


def test_bidirectional_overrides_and_c1_codes_are_removed() -> None:
    assert readable("a\u202eb\u2066c\x85d\n".encode()) == "abcd\n"


def test_a_problem_is_one_short_line_without_secrets() -> None:
    said = problem_text(
        "line one\nline two \x1b[1mtok-longvalue\x1b[0m " + "y" * 400, ("tok-longvalue",)
    )
    assert said.startswith("line one line two *** yyy")
    assert len(said) == PROBLEM_CHARS and said.endswith("…")


def test_a_log_rotated_under_its_record_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "marimo.log"
    log.write_bytes(b"a new run\n")
    # The record says its output begins at byte 500 of a file since rotated.
    assert last_bytes(log, 500, 1000) == b"a new run\n"
    assert last_bytes(log, 2, 1000) == b"new run\n"
    assert last_bytes(log, 0, 4) == b" run\n"  # max_bytes + 1: the caller tells a cut
    assert last_bytes(tmp_path / "none.log", 0, 10) is None
