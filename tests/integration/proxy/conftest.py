"""Fixtures for the proxy tests (helpers live in proxy_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from proxy_helpers import (
    NOTEBOOK_ID,
    Marimo,
    ProxyUnderTest,
    insert_world,
    serve_proxy,
    start_marimo,
    stop_process,
)

from common.settings import Settings


@pytest.fixture(scope="session")
def marimo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Marimo]:
    proc, info = start_marimo(tmp_path_factory.mktemp("marimo"), NOTEBOOK_ID)
    try:
        yield info
    finally:
        stop_process(proc)


@pytest.fixture
async def proxy(settings: Settings, marimo: Marimo) -> AsyncIterator[ProxyUnderTest]:
    world = insert_world(settings.database_url, marimo.url, marimo.token)
    server, under_test = await serve_proxy(settings, world)
    try:
        yield under_test
    finally:
        await server.close()
