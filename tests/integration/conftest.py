"""Fixtures shared by integration tests of more than one part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from scale_seed import scale_database


@pytest.fixture(scope="session")
def scale_url(admin_dsn: str, pg_server: object, template_db: str) -> Iterator[str]:
    """The organization at scale (tests/scale_seed.py), seeded once per run
    for the API's and the reconciler's plan tests."""
    with scale_database(admin_dsn, pg_server, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def scale_conn(scale_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(scale_url, autocommit=True) as c:
        yield c
