"""Readiness and activity probes for the local runtime.

- Sail: `grpc.health.v1.Health/Check` with an empty request; SERVING is the
  reply bytes 08 01 (field 1 = 1), so no generated stubs are needed.
- Marimo: `GET {base}/health` (open, no token).
- Executing: Marimo's own view of its kernels. `GET {base}/api/sessions`
  (token) lists the editor sessions; `GET {base}/api/kernel/status` with a
  session's `Marimo-Session-Id` says `running` when any cell of that session
  is queued or running (marimo/_server/api/endpoints/execution.py). This sees
  a cell waiting on a long Spark job too, which a CPU heuristic would miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from reconciler.runtime import procs

_SERVING = b"\x08\x01"


async def comes_up(
    proc: procs.Proc, healthy: Callable[[], Awaitable[bool]], timeout: float, interval: float
) -> bool:
    """Poll `healthy` while `proc` lives: False if it dies first; True once it
    answers (or is still alive, only slow, after `timeout`)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while loop.time() < until:
        if not procs.is_alive(proc):
            return False
        if await healthy():
            return True
        await asyncio.sleep(interval)
    return True


async def sail_healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            reply = await check(b"", timeout=timeout)
            return bool(reply == _SERVING)
    except (TimeoutError, grpc.RpcError, OSError):
        return False


async def marimo_healthy(
    http: aiohttp.ClientSession, port: int, base_url: str, timeout: float = 1.0
) -> bool:
    try:
        async with http.get(
            f"http://127.0.0.1:{port}{base_url}/health",
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


async def marimo_executing(
    http: aiohttp.ClientSession, port: int, base_url: str, token: str, timeout: float = 2.0
) -> bool | None:
    """True when any kernel of this Marimo has a cell queued or running; None
    when Marimo could not say (see `marimo_activity_at`)."""
    return await marimo_activity_at(http, f"http://127.0.0.1:{port}", base_url, token, timeout)


async def marimo_activity_at(
    http: aiohttp.ClientSession, root: str, base_url: str, token: str, timeout: float = 2.0
) -> bool | None:
    """Ask Marimo itself (at `root`, e.g. a Service URL): `GET {base}/api/sessions`,
    then `GET {base}/api/kernel/status` per session. Any failure (refused,
    timed out, an error status, a body that is not the expected JSON) is
    None, "unknown", never "not executing": that would start the idle timer
    of a kernel that may be running a long job, and auto-stop it."""
    url = f"{root.rstrip('/')}{base_url}"
    auth = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.ClientTimeout(total=timeout)
    unknown = False
    try:
        async with http.get(f"{url}/api/sessions", headers=auth, timeout=limit) as resp:
            if resp.status != 200:
                return None
            sessions = await resp.json()
        for session_id in sessions:
            headers = {**auth, "Marimo-Session-Id": str(session_id)}
            async with http.get(f"{url}/api/kernel/status", headers=headers, timeout=limit) as r:
                if r.status != 200:
                    unknown = True
                elif (await r.json()).get("state") == "running":
                    return True
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, TypeError, AttributeError):
        return None
    return None if unknown else False


async def marimo_file_at(
    http: aiohttp.ClientSession,
    root: str,
    base_url: str,
    token: str,
    path: str,
    max_bytes: int,
    timeout: float = 5.0,
) -> bytes | None:
    """The file at `path` as Marimo serves it (`GET {base}/api/files/download`,
    the editor's own download, with the token): at most `max_bytes` + 1
    bytes. Any failure is None: the caller keeps what it had. A stop waits
    for it (it reads before the teardown): hence a short `timeout`."""
    url = f"{root.rstrip('/')}{base_url}/api/files/download"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with http.get(
            url,
            params={"path": path},
            headers=auth,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as resp:
            if resp.status != 200:
                return None
            data = bytearray()
            while len(data) <= max_bytes:
                chunk = await resp.content.read(max_bytes + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            return bytes(data)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
