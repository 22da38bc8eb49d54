"""Against a real Marimo: the editor loads and runs through the proxy, a view
session is forced to kiosk and refused every route outside the allowlist,
and revoking access or stopping the notebook ends live connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from proxy_helpers import (
    NOTEBOOK_SOURCE,
    PAST_STOP,
    ProxyUnderTest,
    insert_world,
    serve_proxy,
    sql,
    wait_listening,
)

from proxy.cookie import COOKIE_NAME
from proxy.policy import (
    PACKAGE_INSTALLS,
    RENAME,
    SHUTDOWN,
    VIEW_GET_API,
    VIEW_GET_OPEN,
    VIEW_POST_API,
    WEBSOCKETS,
)
from proxy.policy_routes import marimo_middleware_paths, marimo_routes


async def _page(session: aiohttp.ClientSession, p: ProxyUnderTest) -> str:
    async with session.get(p.url("/")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "Server" not in resp.headers
        return await resp.text()


def _server_token(html: str) -> str:
    match = re.search(r'"serverToken":\s*"([^"]+)"', html)
    assert match, "Marimo's page carries its server token"
    return match.group(1)


async def _first_message(ws: aiohttp.ClientWebSocketResponse) -> dict:  # type: ignore[type-arg]
    msg = await ws.receive(timeout=30)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def _kernel_ready(ws: aiohttp.ClientWebSocketResponse) -> dict:  # type: ignore[type-arg]
    """Marimo may replay earlier messages around kernel-ready; find it."""
    for _ in range(20):
        message = await _first_message(ws)
        if message["op"] == "kernel-ready":
            return message
    raise AssertionError("no kernel-ready")


async def test_editor_loads_connects_and_runs_a_cell(proxy: ProxyUnderTest) -> None:
    editor = await proxy.login(proxy.world.owner)
    try:
        token = _server_token(await _page(editor, proxy))
        sid = f"s_{uuid.uuid4().hex[:8]}"
        async with editor.ws_connect(proxy.url(f"/ws?session_id={sid}"), origin=proxy.origin) as ws:
            ready = await _kernel_ready(ws)
            cell = ready["data"]["cell_ids"][0]
            async with editor.post(
                proxy.url("/api/kernel/run"),
                json={
                    "cellIds": [cell],
                    "codes": ["answer = 6 * 7\nanswer"],
                },
                headers={"Marimo-Session-Id": sid, "Marimo-Server-Token": token},
            ) as resp:
                assert resp.status == 200, await resp.text()
            outputs = await _cell_outputs(ws, cell, until=">42<")
            assert any(">42<" in o for o in outputs), outputs
        # Marimo sets its login cookie (worth its token) on answers to the
        # proxy's Bearer requests: none of it reaches the browser.
        assert [c.key for c in editor.cookie_jar] == [COOKIE_NAME]
    finally:
        await editor.close()


async def test_viewer_using_the_editors_session_id_is_kiosk_and_cannot_run(
    proxy: ProxyUnderTest,
) -> None:
    editor = await proxy.login(proxy.world.owner)
    viewer = await proxy.login(proxy.world.viewer, "view")
    try:
        token = _server_token(await _page(editor, proxy))
        _server_token(await _page(viewer, proxy))  # the viewer loads the page too
        sid = f"s_{uuid.uuid4().hex[:8]}"
        async with editor.ws_connect(proxy.url(f"/ws?session_id={sid}"), origin=proxy.origin) as e:
            await _kernel_ready(e)
            # The measured bypass: a viewer that presents the editor's session id.
            async with viewer.ws_connect(
                proxy.url(f"/ws?session_id={sid}&kiosk=false"), origin=proxy.origin
            ) as v:
                ready = await _kernel_ready(v)
                assert ready["data"]["kiosk"] is True
            for path in ("/api/kernel/run", "/api/kernel/takeover", "/api/kernel/save"):
                async with viewer.post(
                    proxy.url(path),
                    json={"cellIds": [], "codes": []},
                    headers={"Marimo-Session-Id": sid, "Marimo-Server-Token": token},
                ) as resp:
                    assert resp.status == 403, path
                    assert "read-only" in await resp.text()
    finally:
        await editor.close()
        await viewer.close()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_route_outside_the_allowlist_is_refused_to_viewers(
    proxy: ProxyUnderTest,
) -> None:
    viewer = await proxy.login(proxy.world.viewer, "view")
    allowed_seen = 0
    try:
        for route in marimo_routes():
            path = _concrete(route.path)
            if route.websocket:
                if path == "/ws":
                    continue  # allowed, as a kiosk: see the test above
                async with viewer.get(
                    proxy.url(path),
                    headers={
                        "Connection": "Upgrade",
                        "Upgrade": "websocket",
                        "Origin": proxy.origin,
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    },
                ) as resp:
                    assert resp.status == 403, path
                    assert "<h1>Not allowed</h1>" in await resp.text()
                continue
            for method in route.methods:
                if method == "HEAD":
                    continue
                async with viewer.request(method, proxy.url(path), json={}) as resp:
                    allowed = (
                        (method == "GET" and path in VIEW_GET_API | VIEW_GET_OPEN)
                        or (method == "POST" and path in VIEW_POST_API)
                        or (
                            method == "GET"
                            and not path.startswith(
                                ("/api/", "/auth/", "/terminal/", "/ws", "/sse", "/og/")
                            )
                        )
                    )
                    everyone = path in SHUTDOWN | PACKAGE_INSTALLS | RENAME
                    if allowed:
                        allowed_seen += 1
                        assert resp.status not in (403, 405), (method, path)
                    else:
                        # Refused to everyone: 405, which Marimo's editor
                        # shows; for being read-only: 403, which it keeps
                        # quiet. Its API answers JSON, as Marimo's own.
                        assert resp.status == (405 if everyone else 403), (method, path)
                        if path.startswith("/api/"):
                            assert resp.content_type == "application/json", (method, path)
                        why = (
                            "sign-in"
                            if path.startswith("/auth/")
                            else "own shutdown"
                            if path in SHUTDOWN
                            else "Installing packages"
                            if path in PACKAGE_INSTALLS
                            else "rename the notebook in the platform"
                            if path in RENAME
                            else "read-only"
                        )
                        assert why in await resp.text()
        # What Marimo serves in middleware, outside its route table.
        for path in marimo_middleware_paths():
            for method in ("GET", "POST"):
                async with viewer.request(method, proxy.url(path + "/x"), json={}) as resp:
                    assert resp.status == 403, (method, path)
                    assert "read-only" in await resp.text()
    finally:
        await viewer.close()
    assert allowed_seen >= len(VIEW_GET_API) + len(VIEW_POST_API)


async def test_terminal_is_refused_even_to_the_owner(proxy: ProxyUnderTest) -> None:
    owner = await proxy.login(proxy.world.owner)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await owner.ws_connect(proxy.url("/terminal/ws"), origin=proxy.origin)
        assert err.value.status == 403
        assert "/terminal/ws" in WEBSOCKETS
    finally:
        await owner.close()


async def _wait_closed(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=deadline - time.monotonic())
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code
    raise AssertionError("connection still open")


async def test_removing_the_members_team_ends_their_websocket(proxy: ProxyUnderTest) -> None:
    await wait_listening(proxy)
    editor = await proxy.login(proxy.world.editor)
    try:
        async with editor.ws_connect(
            proxy.url(f"/ws?session_id=r_{uuid.uuid4().hex[:6]}"), origin=proxy.origin
        ) as ws:
            await _first_message(ws)
            started = time.monotonic()
            sql(
                proxy.settings.database_url,
                "delete from team_memberships where member_id = %s",
                (proxy.world.editor,),
            )
            assert await _wait_closed(ws, 10) == 4403
            assert time.monotonic() - started < 10
        async with editor.get(proxy.url("/")) as resp:
            assert resp.status == 403
    finally:
        await editor.close()


async def test_stopping_the_notebook_ends_websockets(proxy: ProxyUnderTest) -> None:
    await wait_listening(proxy)
    owner = await proxy.login(proxy.world.owner)
    try:
        async with owner.ws_connect(
            proxy.url(f"/ws?session_id=t_{uuid.uuid4().hex[:6]}"), origin=proxy.origin
        ) as ws:
            await _first_message(ws)
            sql(
                proxy.settings.database_url,
                # a stop whose save window (for open editors) is over
                f"update notebooks set status = 'stopping', desired_state = 'stopped', {PAST_STOP}",
            )
            assert await _wait_closed(ws, 10) == 4403
        async with owner.get(proxy.url("/")) as resp:
            assert resp.status == 503
    finally:
        await owner.close()


async def test_periodic_recheck_ends_access_without_notify(settings, marimo) -> None:  # type: ignore[no-untyped-def]
    """The safety net under NOTIFY: with no listener at all, the periodic
    re-check still ends a connection whose session changed."""
    world = insert_world(settings.database_url, marimo.url, marimo.token)
    server, p = await serve_proxy(settings, world, recheck_seconds=0.5, listen_for_changes=False)
    try:
        editor = await p.login(world.editor)
        async with editor.ws_connect(
            p.url(f"/ws?session_id=p_{uuid.uuid4().hex[:6]}"), origin=p.origin
        ) as ws:
            await _first_message(ws)
            sql(settings.database_url, "update notebooks set session_id = 'NEWSESSION'")
            assert await _wait_closed(ws, 10) == 4403
        async with editor.get(p.url("/")) as resp:
            assert resp.status == 401
        await editor.close()
    finally:
        await server.close()


async def _status_sessions(p: ProxyUnderTest, editor: aiohttp.ClientSession) -> int:
    async with editor.get(p.url("/api/status")) as resp:
        assert resp.status == 200
        return int((await resp.json())["sessions"])


async def test_a_viewer_presenting_the_editors_id_does_not_break_reopening(
    proxy: ProxyUnderTest,
) -> None:
    """Measured on Marimo 0.25 without the proxy's namespacing: a kiosk
    consumer registered under the editor's session id replaced the editor in
    Marimo's consumer table, the editor's disconnect was then ignored, the
    next editor got a second session, and every later `/ws` closed with 1006
    ("Only one session should exist while editing")."""
    editor = await proxy.login(proxy.world.owner)
    viewer = await proxy.login(proxy.world.viewer, "view")
    try:
        for _ in range(3):
            sid = f"s_{uuid.uuid4().hex[:6]}"
            async with editor.ws_connect(
                proxy.url(f"/ws?session_id={sid}"), origin=proxy.origin
            ) as e:
                assert (await _kernel_ready(e))["data"]["kiosk"] is False
                v = await viewer.ws_connect(
                    proxy.url(f"/ws?session_id={sid}&kiosk=true"), origin=proxy.origin
                )
                assert (await _kernel_ready(v))["data"]["kiosk"] is True
            # The editor left first (a reload); the viewer leaves later.
            await _wait_orphaned(proxy, editor)
            await v.close()
        # Reopening still gives an editor on the one session.
        async with editor.ws_connect(
            proxy.url(f"/ws?session_id=s_{uuid.uuid4().hex[:6]}"), origin=proxy.origin
        ) as e:
            ready = await _kernel_ready(e)
            assert ready["data"]["kiosk"] is False and ready["data"]["resumed"] is True
        assert await _status_sessions(proxy, editor) == 1
    finally:
        await editor.close()
        await viewer.close()


async def _wait_orphaned(p: ProxyUnderTest, editor: aiohttp.ClientSession) -> None:
    """Marimo finishes its disconnect bookkeeping just after the close
    handshake; wait until it no longer counts an open editor."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with editor.get(p.url("/api/status/connections")) as resp:
            if (await resp.json())["active"] == 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("Marimo still counts an open editor")


async def _cell_outputs(
    ws: aiohttp.ClientWebSocketResponse,  # type: ignore[type-arg]
    cell: str,
    until: str,
    seconds: float = 30,
) -> list[str]:
    """The output data Marimo sends `ws` for `cell` (`cell-op` messages with
    an `output`), read until one contains `until` or `seconds` pass. (One
    deadline over the whole read: `receive(timeout=)` restarts its timer on
    every ping, and the proxy pings a quiet client every 20 s.)"""
    outputs: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not any(until in o for o in outputs):
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, (msg, msg.extra, outputs)
                message = json.loads(msg.data)
                data = message["data"]
                if message["op"] == "cell-op" and data["cell_id"] == cell and data.get("output"):
                    outputs.append(str(data["output"]["data"]))
    return outputs


async def _run(
    session: aiohttp.ClientSession, p: ProxyUnderTest, sid: str, token: str, cell: str, code: str
) -> aiohttp.ClientResponse:
    async with session.post(
        p.url("/api/kernel/run"),
        json={"cellIds": [cell], "codes": [code]},
        headers={"Marimo-Session-Id": sid, "Marimo-Server-Token": token},
    ) as resp:
        await resp.read()
        return resp


async def test_a_viewer_connected_before_a_run_watches_its_output(
    proxy: ProxyUnderTest,
) -> None:
    """The issue's "a `view` session can load the notebook and watch outputs
    update": the viewer's kiosk socket is open before anything has run, the
    editor runs a cell, and the new output reaches the viewer."""
    editor = await proxy.login(proxy.world.owner)
    viewer = await proxy.login(proxy.world.viewer, "view")
    try:
        token = _server_token(await _page(editor, proxy))
        viewer_token = _server_token(await _page(viewer, proxy))
        editor_sid = f"s_{uuid.uuid4().hex[:8]}"
        viewer_sid = f"s_{uuid.uuid4().hex[:8]}"  # the viewer page's own, as Marimo's makes
        async with editor.ws_connect(
            proxy.url(f"/ws?session_id={editor_sid}"), origin=proxy.origin
        ) as e:
            # Marimo now has the session a viewer joins; nothing has run.
            cell = (await _kernel_ready(e))["data"]["cell_ids"][0]
            async with viewer.ws_connect(
                proxy.url(f"/ws?session_id={viewer_sid}"), origin=proxy.origin
            ) as v:
                ready = (await _kernel_ready(v))["data"]
                assert ready["kiosk"] is True
                assert cell in ready["cell_ids"]
                assert not ready["last_executed_code"]  # no output to replay
                # The viewer, on its own live consumer, cannot run the cell.
                refused = await _run(viewer, proxy, viewer_sid, viewer_token, cell, "40 + 3")
                assert refused.status == 403
                ran = await _run(editor, proxy, editor_sid, token, cell, "40 + 2")
                assert ran.status == 200
                outputs = await _cell_outputs(v, cell, until=">42<")
                assert any(">42<" in o for o in outputs), outputs
                assert not any(">43<" in o for o in outputs), outputs
    finally:
        await editor.close()
        await viewer.close()


async def test_a_viewer_connected_before_the_editor_watches_its_output(
    proxy: ProxyUnderTest,
) -> None:
    """The viewer opens the running notebook before anyone has: Marimo has no
    session for a kiosk to join, so the proxy opens one (viewer_session); the
    owner arriving later resumes it as the editor."""
    editor = await proxy.login(proxy.world.owner)
    viewer = await proxy.login(proxy.world.viewer, "view")
    try:
        _server_token(await _page(viewer, proxy))
        async with viewer.ws_connect(
            proxy.url(f"/ws?session_id=s_{uuid.uuid4().hex[:8]}"), origin=proxy.origin
        ) as v:
            token = _server_token(await _page(editor, proxy))
            sid = f"s_{uuid.uuid4().hex[:8]}"
            async with editor.ws_connect(
                proxy.url(f"/ws?session_id={sid}"), origin=proxy.origin
            ) as e:
                ready = (await _kernel_ready(e))["data"]
                assert ready["kiosk"] is False  # the owner edits the session the proxy opened
                cell = ready["cell_ids"][0]
                assert (await _run(editor, proxy, sid, token, cell, "40 + 2")).status == 200
                assert (await _kernel_ready(v))["data"]["kiosk"] is True
                assert any(">42<" in o for o in await _cell_outputs(v, cell, until=">42<"))
    finally:
        await editor.close()
        await viewer.close()


async def test_no_request_names_another_file_for_marimo(
    proxy: ProxyUnderTest, tmp_path: Path
) -> None:
    """Measured before the rewrite: a viewer's `/?file=<another notebook>`
    got that notebook's page (its title and path; Marimo's edit mode loads any
    path it is given), `/?file=/nonexistent.py` a 404 telling which files
    exist, and `/public/…` with `X-Notebook-Id: <another notebook>` that
    notebook's `public/` files. Editors' `file` is cut too; their
    `X-Notebook-Id` is kept (their kernel reads such files anyway). A
    viewer's is pinned to the notebook's own file as the runtime recorded it,
    so their notebook's `public/` works and no other's does; without a
    recorded path (a row from before) it is dropped: Marimo's 404."""
    other = tmp_path / "other"
    (other / "public").mkdir(parents=True)
    secret = NOTEBOOK_SOURCE.replace("marimo.App()", 'marimo.App(app_title="TOPSECRET")')
    (other / "secret_nb.py").write_text(secret)
    (other / "public" / "keys.txt").write_text("OTHER-PUBLIC")
    own = tmp_path / "marimo"  # where the fixture's Marimo serves nb.py from
    (own / "public").mkdir()
    (own / "public" / "own.txt").write_text("OWN-PUBLIC")

    def notebook_id(path: Path) -> dict[str, str]:
        return {"X-Notebook-Id": quote(str(path), safe="")}  # as Marimo's service worker

    async def own_public_as_viewer(headers: dict[str, str]) -> tuple[int, str]:
        async with (
            await proxy.login(proxy.world.viewer, "view") as session,
            session.get(proxy.url("/public/own.txt"), headers=headers) as resp,
        ):
            return resp.status, await resp.text()

    # no path recorded: a viewer's header is dropped (Marimo's 404)
    assert (await own_public_as_viewer(notebook_id(own / "nb.py")))[0] == 404
    sql(
        proxy.settings.database_url,
        "update notebooks set runtime_state = runtime_state || jsonb_build_object("
        "'notebook_path', %s::text)",
        (str(own / "nb.py"),),
    )
    # recorded (once the proxy's cache has heard of it): whatever notebook
    # the viewer names, it is this one
    deadline = time.monotonic() + 10
    while await own_public_as_viewer(notebook_id(own / "nb.py")) != (200, "OWN-PUBLIC"):
        assert time.monotonic() < deadline, "the recorded path never reached the proxy"
        await asyncio.sleep(0.05)
    assert await own_public_as_viewer(notebook_id(other / "secret_nb.py")) == (200, "OWN-PUBLIC")

    for member, mode in ((proxy.world.viewer, "view"), (proxy.world.owner, "edit")):
        async with await proxy.login(member, mode) as session:
            for file in (other / "secret_nb.py", "/nonexistent.py"):
                async with session.get(proxy.url(f"/?file={file}")) as resp:
                    assert resp.status == 200, (mode, file)  # this notebook's own page
                    page = await resp.text()
                    assert "TOPSECRET" not in page and str(other) not in page
                    assert "nonexistent" not in page
            url = proxy.url("/public/keys.txt")
            async with session.get(url, headers=notebook_id(other / "secret_nb.py")) as resp:
                if mode == "view":
                    assert resp.status == 404
                    assert "OTHER-PUBLIC" not in await resp.text()
            async with session.get(
                proxy.url("/public/own.txt"), headers=notebook_id(own / "nb.py")
            ) as resp:
                assert resp.status == 200, mode
                assert await resp.text() == "OWN-PUBLIC"
