"""The whole path with real pieces: the API's start (row + job in one
transaction) → queue → worker → Sail + Marimo → `running`, seen through the
API; then the API's stop → `stopped`, with nothing left running. And a
notebook created from a Jupyter file: Marimo opens it converted."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from marimo._ast.parse import parse_notebook
from reconciler_helpers import kinds, processes_for

from api.app import create_app
from common.ids import new_id
from common.settings import Settings
from common.tokens import hash_token, new_token, token_prefix

pytestmark = pytest.mark.slow

NB = "/api/v1/workloads/notebooks"


@dataclass
class Api:
    client: TestClient
    auth: dict[str, str]
    config_id: str

    async def create(self, **fields: Any) -> str:
        body = {"name": "nb", "workloadConfigId": self.config_id, **fields}
        resp = await self.client.post(NB, json=body, headers=self.auth)
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["item"]["notebookId"])

    async def act(self, nid: str, action: str) -> None:
        resp = await self.client.post(f"{NB}/{nid}/{action}", headers=self.auth)
        assert resp.status == 202, await resp.text()

    async def status(self, nid: str) -> dict[str, Any]:
        r = await self.client.get(f"{NB}/{nid}", headers=self.auth)
        body = await r.json()
        return next(n for n in body["included"]["notebooks"] if n["id"] == nid)

    async def wait(self, nid: str, *wanted: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        until = loop.time() + 60
        nb = await self.status(nid)
        while nb["status"] not in wanted:
            assert loop.time() < until, nb
            await asyncio.sleep(0.05)
            nb = await self.status(nid)
        return nb


@asynccontextmanager
async def api_of(rows: Any, db: Any, rsettings: Settings) -> AsyncIterator[Api]:
    token = new_token()
    await db.execute(
        "insert into api_tokens (id, member_id, name, prefix, secret_hash)"
        " values (%s, %s, 't', %s, %s)",
        (new_id(), rows.member, token_prefix(token), hash_token(token)),
    )
    auth = {"Authorization": f"Bearer {token}"}
    async with TestClient(TestServer(create_app(rsettings))) as client:
        resp = await client.post("/api/v1/workloads/configs", json={"name": "c"}, headers=auth)
        assert resp.status == 201, await resp.text()
        yield Api(client, auth, (await resp.json())["id"])


# `$(HOME)` would be expanded by a kubelet in a pod spec's env; `$$` halved.
SECRET = "pa$$(HOME)word"


async def test_start_and_stop_through_the_api(rows, db, worker, rsettings: Settings):
    await worker(sweep_interval_seconds=300)  # jobs alone must carry every transition
    async with api_of(rows, db, rsettings) as api:
        # The config's secret environment reaches Sail and Marimo (and so the
        # kernel) as its env does, byte for byte.
        resp = await api.client.patch(
            f"/api/v1/workloads/configs/{api.config_id}",
            json={"env": {"TZ": "UTC"}, "secretEnv": {"WAREHOUSE_PASSWORD": SECRET}},
            headers=api.auth,
        )
        assert resp.status == 200, await resp.text()
        nid = await api.create()
        await api.act(nid, "start")
        nb = await api.wait(nid, "running", "failed")
        assert nb["status"] == "running", nb["statusMessage"]
        assert nb["sessionId"]
        assert "sessionToken" not in nb and "runtimeState" not in nb
        leaders = [p for p in processes_for(rsettings.data_dir, nid) if p.pid == os.getpgid(p.pid)]
        assert sorted(kinds(leaders)) == ["marimo", "sail"]
        for proc in leaders:
            environ = proc.environ()
            assert environ["WAREHOUSE_PASSWORD"] == SECRET, proc.cmdline()
            assert environ["TZ"] == "UTC"

        await api.act(nid, "stop")
        nb = await api.wait(nid, "stopped")
        assert nb["sessionId"] is None
        assert processes_for(rsettings.data_dir, nid) == []


JUPYTER = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Imported"},
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "outputs": [],
            "source": "answer = 6 * 7",
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


async def test_a_notebook_from_a_jupyter_file_opens_on_it_and_keeps_its_edits(
    rows, db, worker, rsettings: Settings
):
    await worker(sweep_interval_seconds=300)
    async with api_of(rows, db, rsettings) as api:
        source = {"format": "ipynb", "content": json.dumps(JUPYTER)}
        nid = await api.create(source=source)
        await api.act(nid, "start")
        nb = await api.wait(nid, "running", "failed")
        assert nb["status"] == "running", nb["statusMessage"]

        file = rsettings.data_dir / "notebooks" / nid / "notebook.py"
        text = file.read_text(encoding="utf-8")
        parsed = parse_notebook(text, filepath=str(file))
        assert parsed is not None and parsed.valid
        assert "answer = 6 * 7" in [cell.code for cell in parsed.cells]
        # Written, so no longer kept: a later start never puts it back.
        cur = await db.execute("select 1 from notebook_seeds where notebook_id = %s", (nid,))
        assert await cur.fetchone() is None

        await api.act(nid, "stop")
        await api.wait(nid, "stopped")
        file.write_text(text + "\n# edited by its member\n", encoding="utf-8")
        await api.act(nid, "start")
        nb = await api.wait(nid, "running", "failed")
        assert nb["status"] == "running", nb["statusMessage"]
        assert file.read_text(encoding="utf-8").endswith("# edited by its member\n")
        await api.act(nid, "stop")
        await api.wait(nid, "stopped")
