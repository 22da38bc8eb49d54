"""Fixtures: an emulated Kubernetes API with a fake kubelet (see tests/kube_emulator)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kube_emulator.cluster import Kube, running_kube


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube() as k:
        yield k
