"""API test fixtures: a live app on a test server with an injected clock, and
a factory writing rows directly to the test's database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_factories import Factory, World, make_world

from api.app import create_app
from common.clock import FakeClock
from common.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def factory(settings: Settings, clock: FakeClock) -> Iterator[Factory]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield Factory(conn, clock)


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[TestClient]:
    app = create_app(settings, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
def world(factory: Factory) -> World:
    return make_world(factory)
