"""structlog set up as its docs recommend for production: contextvars merged,
ISO UTC timestamps, JSON lines when not on a terminal."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from common.settings import LOG_FORMATS, LOG_LEVELS, choice


class _CurrentStderr:
    """Writes to whatever sys.stderr is now, so a swapped stream (pytest's
    capture) never leaves a cached logger holding a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# Control characters a terminal acts on (ESC, BEL, CR, C1), not newlines or
# tabs (a traceback's). A request's path is logged decoded: on a terminal,
# `%1b]0;…%07` would retitle the operator's window, `%1b[2J` clear it.
_TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape_controls(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and _TERMINAL_CONTROLS.search(value):
            event[key] = _TERMINAL_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return event


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """`fmt` and `level` as NOTEBOOKS_LOG_FORMAT and NOTEBOOKS_LOG_LEVEL take
    them (any case; empty: the default); anything else is a SettingsError,
    never a silent default."""
    fmt = choice(fmt or "auto", "NOTEBOOKS_LOG_FORMAT", LOG_FORMATS)
    level = choice(level or "info", "NOTEBOOKS_LOG_LEVEL", LOG_LEVELS)
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if not json_lines:  # JSON escapes them itself
        shared.append(_escape_controls)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Route stdlib logging (aiohttp, pgqueuer) through the same renderer.
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.ERROR)
