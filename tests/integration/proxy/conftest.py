"""Fixtures for the proxy tests (helpers live in proxy_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from proxy_helpers import (
    NOTEBOOK_ID,
    Marimo,
    ProxyUnderTest,
    free_port,
    insert_world,
    serve_proxy,
    start_marimo,
    stop_process,
)

from common.settings import Settings


@pytest.fixture
def marimo(tmp_path: Path) -> Iterator[Marimo]:
    """A fresh Marimo per test, so no test sees another's session. (The
    "Only one session should exist while editing" failure once blamed on
    shared servers came from viewers presenting the editor's session id; the
    proxy now namespaces viewer ids: docs/proxy.md, "Reopening a notebook".)"""
    proc, info = start_marimo(tmp_path / "marimo", NOTEBOOK_ID)
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


@pytest.fixture
async def login_proxy(settings: Settings) -> AsyncIterator[ProxyUnderTest]:
    """The proxy in front of nothing: login checks never reach upstream."""
    world = insert_world(settings.database_url, f"http://127.0.0.1:{free_port()}", "unused")
    server, under_test = await serve_proxy(settings, world)
    try:
        yield under_test
    finally:
        await server.close()
