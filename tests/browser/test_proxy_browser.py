"""The session proxy in headless Chromium, as the platform uses it: a small
"platform" page asks the real API to `open` the notebook, embeds the URL in
an iframe and pings every 60 s. Sail and Marimo are real processes started
here; the API and the proxy run as `python -m cli api|proxy`.

- the owner's Marimo editor loads inside the iframe and a cell running a
  Spark query against the notebook's Sail shows its result;
- a team viewer (mode `view`) sees that output, and cannot run a cell: the
  editor's run request from inside their iframe is refused by the proxy.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from common.tokens import hash_token, new_token, token_prefix
from reconciler.runtime.procs import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NOTEBOOK = "NBBROWSER1"
# sum(0..9) = 45, so 45007 can only come from Sail having run the query.
SPARK_ANSWER = "45007"
NOTEBOOK_SOURCE = """import marimo

app = marimo.App()


@app.cell
def _():
    import os

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    answer = spark.range(10).selectExpr("sum(id) * 1000 + 7 as answer").collect()[0][0]
    answer
    return


if __name__ == "__main__":
    app.run()
"""
PLATFORM_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Platform</title></head>
<body><h1>Platform</h1><p id="mode">{mode}</p>
<iframe id="nb" src="{url}" style="width:1200px;height:700px"></iframe>
<script>
window.PING_EVERY_MS = 60000;
function ping() {{ fetch("/ping?member={member}", {{method: "POST"}}); }}
ping();
setInterval(ping, window.PING_EVERY_MS);
</script></body></html>
"""


def _wait(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


@dataclass
class Platform:
    api_url: str
    proxy_url: str
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    pings: list[tuple[str, int]] = field(default_factory=list)

    def api(self, method: str, path: str, member: str) -> tuple[int, Any]:
        req = urllib.request.Request(
            f"{self.api_url}/api/v1{path}",
            data=b"{}",
            method=method,
            headers={
                "Authorization": f"Bearer {self.tokens[member]}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


def _serve_platform(platform: Platform) -> ThreadingHTTPServer:
    """The platform's own page: opens the notebook server-side with the
    member's API token, embeds the URL, forwards the page's pings."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _member(self) -> str:
            return self.path.partition("member=")[2]

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            member = self._member()
            status, body = platform.api("POST", f"/workloads/notebooks/{NOTEBOOK}/open", member)
            assert status == 200, body
            page = PLATFORM_PAGE.format(url=body["url"], mode=body["mode"], member=member)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page.encode())

        def do_POST(self) -> None:  # noqa: N802
            member = self._member()
            status, _ = platform.api("POST", f"/workloads/notebooks/{NOTEBOOK}/ping", member)
            platform.pings.append((member, status))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    platform.url = f"http://127.0.0.1:{server.server_port}"
    return server


def _seed(dsn: str, marimo_url: str, sail_url: str, marimo_token: str) -> dict[str, str]:
    tokens = {"owner": new_token(), "viewer": new_token()}
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("insert into organizations (id, name) values ('ORGB', 'org')")
        for member in ("OWNERB", "VIEWERB"):
            conn.execute(
                "insert into members (id, organization_id, email, name) values "
                "(%s, 'ORGB', %s, %s)",
                (member, f"{member}@example.com", member),
            )
        for member, token in (("OWNERB", tokens["owner"]), ("VIEWERB", tokens["viewer"])):
            conn.execute(
                "insert into api_tokens (id, member_id, name, prefix, secret_hash) "
                "values (%s, %s, 't', %s, %s)",
                (f"T{member}", member, token_prefix(token), hash_token(token)),
            )
        conn.execute("insert into teams (id, organization_id, name) values ('TEAMB', 'ORGB', 'v')")
        conn.execute(
            "insert into team_memberships (team_id, member_id, role) values "
            "('TEAMB', 'VIEWERB', 'viewer')"
        )
        conn.execute(
            "insert into workload_configs (id, organization_id, name) values "
            "('WCB', 'ORGB', 'default')"
        )
        conn.execute(
            "insert into notebooks (id, organization_id, member_id, workload_config_id, name,"
            " desired_state, status, session_id, session_token, runtime_state, last_active_at,"
            " created_by, updated_by) values (%s, 'ORGB', 'OWNERB', 'WCB', 'spark', 'running',"
            " 'running', 'SESSIONB', %s, %s::jsonb, now(), 'OWNERB', 'OWNERB')",
            (NOTEBOOK, marimo_token, json.dumps({"marimo_url": marimo_url, "sail_url": sail_url})),
        )
        conn.execute(
            "insert into notebook_teams (notebook_id, team_id) values (%s, 'TEAMB')", (NOTEBOOK,)
        )
    return tokens


@pytest.fixture
def platform(settings: Any, tmp_path: Path) -> Iterator[Platform]:
    procs: list[subprocess.Popen[bytes]] = []
    server: ThreadingHTTPServer | None = None
    logs = tmp_path / "logs"
    logs.mkdir()

    def spawn(
        name: str, args: list[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    try:
        sail_port, marimo_port = free_port(), free_port()
        api_port, proxy_port = free_port(), free_port()
        spawn(
            "sail",
            [str(BIN / "sail"), "spark", "server", "--ip", "127.0.0.1", "--port", str(sail_port)],
            dict(os.environ),
        )
        work = tmp_path / "nb"
        work.mkdir()
        (work / "notebook.py").write_text(NOTEBOOK_SOURCE)
        marimo_token = secrets.token_urlsafe(24)
        spawn(
            "marimo",
            [
                str(BIN / "marimo"),
                "edit",
                "notebook.py",
                "--headless",
                "--host",
                "127.0.0.1",
                "--port",
                str(marimo_port),
                "--base-url",
                f"/notebooks/{NOTEBOOK}",
                "--token-password",
                marimo_token,
                "--skip-update-check",
            ],
            {**os.environ, "SPARK_REMOTE": f"sc://127.0.0.1:{sail_port}"},
            cwd=work,
        )
        marimo_url = f"http://127.0.0.1:{marimo_port}"
        tokens = _seed(
            settings.database_url, marimo_url, f"sc://127.0.0.1:{sail_port}", marimo_token
        )
        p = Platform(
            api_url=f"http://127.0.0.1:{api_port}",
            proxy_url=f"http://127.0.0.1:{proxy_port}",
            tokens=tokens,
        )
        server = _serve_platform(p)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "NOTEBOOKS_API_PORT": str(api_port),
            "NOTEBOOKS_PROXY_PORT": str(proxy_port),
            "NOTEBOOKS_API_METRICS_PORT": "off",  # not scraped; 8083/8084 may be taken
            "NOTEBOOKS_PROXY_METRICS_PORT": "off",
            "NOTEBOOKS_SECRET_KEY": settings.secret_key,
            "NOTEBOOKS_SIGNING_KEYS": ",".join(f"{k}:{s}" for k, s in settings.signing_keys),
            "NOTEBOOKS_COOKIE_SECURE": "false",
            "NOTEBOOKS_FRAME_ANCESTORS": p.url,
            "NOTEBOOKS_DATA_DIR": str(settings.data_dir),
            "NOTEBOOKS_LOG_FORMAT": "console",
        }
        spawn("api", [sys.executable, "-m", "cli", "api"], env)
        spawn("proxy", [sys.executable, "-m", "cli", "proxy"], env)
        for url in (
            f"{marimo_url}/notebooks/{NOTEBOOK}/health",
            f"{p.api_url}/healthz",
            f"{p.proxy_url}/healthz",
        ):
            _wait(lambda url=url: _http_ok(url), 60, url)
        _wait(lambda: socket.create_connection(("127.0.0.1", sail_port), timeout=1), 30, "sail")
        yield p
    finally:
        if server is not None:
            server.shutdown()
        for proc in reversed(procs):
            # Sail exits gracefully on SIGINT (SIGTERM kills it without a word).
            _stop(proc, signal.SIGINT if proc is procs[0] else signal.SIGTERM)


def test_editor_runs_spark_in_the_iframe_and_a_viewer_only_watches(
    browser: Any, platform: Platform, artifacts: Path
) -> None:
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    page = owner.new_page()
    page.goto(f"{platform.url}/?member=owner")
    assert page.locator("#mode").inner_text() == "edit"
    frame = page.frame_locator("#nb")
    frame.locator(".cm-editor").first.wait_for(timeout=60_000)
    _wait(lambda: ("owner", 204) in platform.pings, 10, "the page's first ping")
    assert page.evaluate("window.PING_EVERY_MS") == 60_000

    # Run the Spark cell (auto-run is off in Marimo 0.25): focus it, then its run button.
    frame.locator(".cm-editor").first.locator(".cm-content").click()
    frame.locator("[data-testid=run-button]").first.click()
    frame.get_by_text(SPARK_ANSWER, exact=True).first.wait_for(timeout=90_000)
    page.screenshot(path=str(artifacts / "proxy-editor.png"))

    viewer = browser.new_context(viewport={"width": 1280, "height": 900})
    vpage = viewer.new_page()
    vpage.goto(f"{platform.url}/?member=viewer")
    assert vpage.locator("#mode").inner_text() == "view"
    vframe = vpage.frame_locator("#nb")
    # The kiosk viewer gets the live session's output.
    vframe.get_by_text(SPARK_ANSWER, exact=True).first.wait_for(timeout=60_000)
    vpage.screenshot(path=str(artifacts / "proxy-viewer.png"))
    vframe.get_by_text("kiosk mode").first.wait_for()
    assert vframe.locator("[data-testid=run-button]").count() == 0
    # Marimo offers "Take over" to readers; the proxy refuses it, so nothing changes.
    with vpage.expect_response(lambda r: "/api/kernel/takeover" in r.url) as took:
        vframe.locator("[data-testid=takeover-button]").click()
    assert took.value.status == 403
    vframe.get_by_text("Failed to take over session").first.wait_for()
    vframe.get_by_text("kiosk mode").first.wait_for()
    assert vframe.locator("[data-testid=run-button]").count() == 0
    # Running a cell from the viewer's page, as the editor's frontend would, is refused.
    inner = next(f for f in vpage.frames if f.url.startswith(platform.proxy_url))
    status = inner.evaluate(
        """async () => (await fetch("./api/kernel/run", {method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({cellIds: [], codes: []})})).status"""
    )
    assert status == 403
    assert (
        inner.evaluate(
            "async () => (await fetch('./api/kernel/takeover', {method: 'POST'})).status"
        )
        == 403
    )
    _wait(lambda: ("viewer", 204) in platform.pings, 10, "the viewer's first ping")
    viewer.close()
    owner.close()
