"""What the logs write where an operator reads them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from common.logging import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    config, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    try:
        yield
    finally:
        structlog.configure(**config)
        logging.getLogger().handlers[:] = handlers


def test_a_console_log_escapes_what_a_terminal_would_act_on(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A request's path is logged decoded, and anyone may send one: ESC and
    BEL from `%1b[2J%1b]0;pwned%07` reached the operator's terminal raw."""
    configure_logging("console", "info")
    path = "/notebooks/\x1b[2J\x1b]0;pwned\x07"
    structlog.get_logger("t").info("request", path=path)
    logging.getLogger("aiohttp.server").warning("from stdlib %s", "\x1b[31m")
    err = capsys.readouterr().err
    assert "\x1b[2J" not in err and "\x07" not in err and "\x1b[31m" not in err
    assert "/notebooks/\\x1b[2J\\x1b]0;pwned\\x07" in err and "\\x1b[31m" in err


def test_json_lines_escape_controls_themselves(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    structlog.get_logger("t").info("request", path="/\x1b[2J")
    err = capsys.readouterr().err
    assert "\x1b" not in err and '"path": "/\\u001b[2J"' in err
