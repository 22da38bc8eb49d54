"""Logging for the command line's in-process tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def plain_logging() -> Iterator[None]:
    """`configure_logging` binds structlog and the root handler to the stderr of
    the moment, which pytest swaps per test and then closes; start and end each
    test with the defaults, which look sys.stdout up on every call."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
