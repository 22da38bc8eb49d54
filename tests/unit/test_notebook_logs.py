"""What of a component's output is kept and shown (common/notebook_logs.py)."""

from __future__ import annotations

from common.notebook_logs import readable, redacted


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
