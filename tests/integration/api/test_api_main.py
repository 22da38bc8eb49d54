"""`api.app.main` as a process: serves on the configured port (metrics on a
listener of their own), logs one JSON line per request, and exits cleanly on
SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time

import aiohttp
import pytest

from common.settings import Settings

SCRIPT = "from common.settings import Settings; from api.app import main; main(Settings.from_env())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.returncode is None, "api exited early"
            try:
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("api did not become ready")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_main_serves_logs_json_and_stops_on_signal(settings: Settings, sig: int) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "NOTEBOOKS_API_PORT": str(port),
        "NOTEBOOKS_API_METRICS_PORT": str(metrics_port),
        "NOTEBOOKS_SECRET_KEY": "m" * 40,
        "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
        "NOTEBOOKS_LOG_FORMAT": "json",
        "NOTEBOOKS_DATA_DIR": str(settings.data_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", proc)
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/api/v1/me", headers={"X-Request-Id": "req-42"}
            ) as resp,
        ):
            assert resp.status == 401
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp,
        ):
            assert resp.status == 200
            assert 'notebooks_db_pool_connections{process="api",state="max"}' in await resp.text()
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(ln) for ln in err.decode().splitlines() if ln.startswith("{")]
    (me,) = [
        ln for ln in lines if ln.get("event") == "request" and ln.get("request_id") == "req-42"
    ]
    assert me["status"] == 401 and me["route"] == "/api/v1/me" and me["code"] == "unauthorized"
    assert me["timestamp"].endswith("Z") and me["level"] == "info"
