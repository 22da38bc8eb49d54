"""Is a notebook's kernel running a cell? Asked of Marimo itself, as the
local runtime does (see reconciler/runtime/probes.py for the endpoints):
`GET {base}/api/sessions`, then `GET {base}/api/kernel/status` per session.
Here Marimo is a Service URL, not a loopback port. Any failure reads as
"not executing": the worst case is an idle timer that starts early."""

from __future__ import annotations

import aiohttp


async def marimo_executing(
    http: aiohttp.ClientSession, root: str, base_url: str, token: str, timeout: float = 2.0
) -> bool:
    url = f"{root.rstrip('/')}{base_url}"
    auth = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with http.get(f"{url}/api/sessions", headers=auth, timeout=limit) as resp:
            if resp.status != 200:
                return False
            sessions = await resp.json()
        for session_id in sessions:
            headers = {**auth, "Marimo-Session-Id": str(session_id)}
            async with http.get(f"{url}/api/kernel/status", headers=headers, timeout=limit) as r:
                if r.status == 200 and (await r.json()).get("state") == "running":
                    return True
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
        return False
    return False
