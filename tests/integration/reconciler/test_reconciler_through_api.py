"""The whole path with real pieces: the API's start (row + job in one
transaction) → queue → worker → Sail + Marimo → `running`, seen through the
API; then the API's stop → `stopped`, with nothing left running."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from reconciler_helpers import processes_for

from api.app import create_app
from common.ids import new_id
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix

pytestmark = pytest.mark.slow


async def test_start_and_stop_through_the_api(rows, db, worker, rsettings: Settings):
    token = new_token()
    await db.execute(
        "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
        " values (%s, %s, 't', %s, %s)",
        (new_id(), rows.member, token_prefix(token), hash_token(token)),
    )
    auth = {"Authorization": f"Bearer {token}"}
    await worker(sweep_interval_seconds=300)  # jobs alone must carry every transition
    async with TestClient(TestServer(create_app(rsettings))) as api:
        resp = await api.post("/api/v1/workloads/configs", json={"name": "c"}, headers=auth)
        assert resp.status == 201, await resp.text()
        config_id = (await resp.json())["id"]
        resp = await api.post(
            "/api/v1/workloads/notebooks",
            json={"name": "nb", "workloadConfigId": config_id},
            headers=auth,
        )
        assert resp.status == 201, await resp.text()
        nid = (await resp.json())["item"]["notebookId"]

        async def status() -> dict[str, Any]:
            r = await api.get(f"/api/v1/workloads/notebooks/{nid}", headers=auth)
            body = await r.json()
            return next(n for n in body["included"]["notebooks"] if n["id"] == nid)

        async def wait(*wanted: str) -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            until = loop.time() + 60
            nb = await status()
            while nb["status"] not in wanted:
                assert loop.time() < until, nb
                await asyncio.sleep(0.05)
                nb = await status()
            return nb

        resp = await api.post(f"/api/v1/workloads/notebooks/{nid}/start", headers=auth)
        assert resp.status == 202, await resp.text()
        nb = await wait("running", "failed")
        assert nb["status"] == "running", nb["statusMessage"]
        assert nb["sessionId"]
        assert "sessionToken" not in nb and "runtimeState" not in nb

        resp = await api.post(f"/api/v1/workloads/notebooks/{nid}/stop", headers=auth)
        assert resp.status == 202, await resp.text()
        nb = await wait("stopped")
        assert nb["sessionId"] is None
        assert processes_for(rsettings.data_dir, nid) == []
