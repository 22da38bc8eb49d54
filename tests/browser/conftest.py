"""Browser-test fixtures, shared by every test under tests/browser:

- `browser`: Debian's headless Chromium driven by Playwright's Python package
  (never `playwright install`; /usr/bin/chromium or $NOTEBOOKS_CHROMIUM).
- `stack`: the whole service as `make run` runs it, api, worker and proxy as
  child processes of `python -m cli` with the local runtime, on OS-chosen
  ports, against the test's own database (the `settings` fixture), plus a
  first organization admin and its token (the same bootstrap `notebooks up`
  does, so the default workload config exists).

Everything started here is stopped at teardown, even after a failure: the
notebooks are stopped through the API, then the three processes get SIGTERM,
and any Sail or Marimo child left under the test's data directory is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from reconciler.runtime.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("NOTEBOOKS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_SECONDS = 60.0


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - not ready yet; report the last error
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Stack:
    """A running api + worker + proxy and a signed-in admin's token."""

    api_url: str
    proxy_url: str
    token: str
    member_id: str
    organization_id: str
    data_dir: Path
    logs: dict[str, Path] = field(default_factory=dict)
    console_url: str = ""  # where a browser opens the console ("" = api_url)

    def call(
        self, method: str, path: str, body: object | None = None, token: str | None = None
    ) -> tuple[int, Any]:
        """One REST call (status, parsed JSON or None); errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api_url + "/api/v1" + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def wait_provisioned(self, nb_id: str, seconds: float) -> None:
        """Until the notebook runs (running, idle or detached); a failed start
        fails the test with the stack's log tails."""

        def provisioned() -> bool:
            _, got = self.call("GET", f"/workloads/notebooks/{nb_id}")
            status = got["included"]["notebooks"][0]["status"]
            assert status != "failed", f"start failed: {got}\n{self.log_tails()}"
            return status in ("running", "idle", "detached")

        wait_for(provisioned, seconds, "the notebook to run")

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            out.append(f"----- {name} ({path}) -----\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


def _stack_env(settings: Any, api_port: int, proxy_port: int, metrics_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "NOTEBOOKS_DATA_DIR": str(settings.data_dir),
            "NOTEBOOKS_RUNTIME": "local",
            "NOTEBOOKS_API_PORT": str(api_port),
            "NOTEBOOKS_PROXY_PORT": str(proxy_port),
            "NOTEBOOKS_WORKER_METRICS_PORT": str(metrics_port),
            # not scraped here; off rather than on 8083/8084, which may be taken
            "NOTEBOOKS_API_METRICS_PORT": "off",
            "NOTEBOOKS_PROXY_METRICS_PORT": "off",
            "NOTEBOOKS_SECRET_KEY": settings.secret_key,
            "NOTEBOOKS_SIGNING_KEYS": ",".join(f"{k}:{s}" for k, s in settings.signing_keys),
            "NOTEBOOKS_COOKIE_SECURE": "false",
            "NOTEBOOKS_LOG_FORMAT": "console",
            "NOTEBOOKS_SWEEP_INTERVAL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _kill_leftovers(data_dir: Path) -> None:
    """Sail and Marimo run in their own process groups (they outlive a worker
    on purpose); kill any that still work under this test's data directory."""
    marker = str(data_dir)
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if marker in cmdline or (proc.info["cwd"] or "").startswith(marker):
                proc.kill()


def _all_notebooks(stack: Stack) -> list[dict[str, Any]] | None:
    """Every notebook the stack's admin sees, following `marker`; None on an error."""
    notebooks: list[dict[str, Any]] = []
    path = "/workloads/notebooks"
    while True:
        status, page = stack.call("GET", path)
        if status != 200:
            return None
        notebooks += page["included"]["notebooks"]
        if not page.get("marker"):
            return notebooks
        path = "/workloads/notebooks?marker=" + urllib.parse.quote(page["marker"])


def _stop_notebooks(stack: Stack) -> None:
    notebooks = _all_notebooks(stack)
    if notebooks is None:
        return
    for nb in notebooks:
        if nb["status"] != "stopped":
            stack.call("POST", f"/workloads/notebooks/{nb['id']}/stop")

    def settled() -> bool:
        found = _all_notebooks(stack)
        return found is not None and all(n["status"] in ("stopped", "failed") for n in found)

    with contextlib.suppress(AssertionError):
        wait_for(settled, 30, "notebooks to stop", interval=0.5)


# The site the own-origins stack is served under: Chromium is told that it
# and every name under it are loopback (`--host-resolver-rules`), so the
# console (`nb.test`) and each notebook (`{id}.nb.test`) are one site, as in
# production, without any DNS.
OWN_ORIGINS_SITE = "nb.test"
OWN_ORIGINS_ARGS = [
    f"--host-resolver-rules=MAP {OWN_ORIGINS_SITE} 127.0.0.1, MAP *.{OWN_ORIGINS_SITE} 127.0.0.1"
]


@pytest.fixture
def stack(settings: Any, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(settings, tmp_path) as st:
        yield st


@pytest.fixture
def stack_saving(settings: Any, tmp_path: Path) -> Iterator[Stack]:
    """The stack with its data directory outside /tmp (under /var/tmp):
    Marimo's editor never saves a notebook file under /tmp
    (docs/operations.md), which is where pytest's directories are."""
    outside_tmp = Path(tempfile.mkdtemp(prefix="notebooks-test-", dir="/var/tmp"))
    try:
        with running_stack(replace(settings, data_dir=outside_tmp / "data"), tmp_path) as st:
            yield st
    finally:
        shutil.rmtree(outside_tmp, ignore_errors=True)


@pytest.fixture
def stack_own_origins(settings: Any, tmp_path: Path) -> Iterator[Stack]:
    """The stack with an origin per notebook (NOTEBOOKS_PROXY_NOTEBOOK_URL):
    the console at http://nb.test:{api port}, notebook X at
    http://x.nb.test:{proxy port}. Use it with `browser_own_origins`."""

    def site_env(api_port: int, proxy_port: int) -> dict[str, str]:
        return {
            "NOTEBOOKS_API_PUBLIC_URL": f"http://{OWN_ORIGINS_SITE}:{api_port}",
            "NOTEBOOKS_PROXY_NOTEBOOK_URL": f"http://{{id}}.{OWN_ORIGINS_SITE}:{proxy_port}",
        }

    with running_stack(settings, tmp_path, site_env) as st:
        st.console_url = f"http://{OWN_ORIGINS_SITE}:{st.api_url.rsplit(':', 1)[1]}"
        yield st


@pytest.fixture
def stack_webhooks(settings: Any, tmp_path: Path) -> Iterator[Stack]:
    """The stack with insecure webhooks allowed (NOTEBOOKS_WEBHOOKS_ALLOW_INSECURE):
    its worker delivers to a receiver on this machine, over http."""
    with running_stack(
        settings, tmp_path, lambda _api, _proxy: {"NOTEBOOKS_WEBHOOKS_ALLOW_INSECURE": "true"}
    ) as st:
        yield st


@contextlib.contextmanager
def running_stack(
    settings: Any,
    tmp_path: Path,
    extra_env: Callable[[int, int], dict[str, str]] | None = None,
) -> Iterator[Stack]:
    from cli.bootstrap import ensure_first_admin

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    admin = ensure_first_admin(settings.database_url, None)
    api_port, proxy_port, metrics_port = free_port(), free_port(), free_port()
    env = _stack_env(settings, api_port, proxy_port, metrics_port)
    if extra_env is not None:
        env.update(extra_env(api_port, proxy_port))
    st = Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        proxy_url=f"http://127.0.0.1:{proxy_port}",
        token=admin.token,
        member_id=admin.member_id,
        organization_id=admin.organization_id,
        data_dir=settings.data_dir,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("api", "proxy", "worker"):
            log_path = tmp_path / f"{name}.log"
            st.logs[name] = log_path
            with log_path.open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "cli", name],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for name, url in (
            ("api", f"{st.api_url}/healthz"),
            ("proxy", f"{st.proxy_url}/healthz"),
            ("worker", f"http://127.0.0.1:{metrics_port}/metrics"),
        ):

            def ready(name: str = name, url: str = url) -> bool:
                code = procs[name].poll()
                if code is not None:
                    raise AssertionError(f"{name} exited with {code}:\n{st.log_tails()}")
                return _http_ok(url)

            try:
                wait_for(ready, READY_SECONDS, f"{name} at {url}", interval=0.2)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{st.log_tails()}") from None
        yield st
    finally:
        if "api" in procs and procs["api"].poll() is None and "worker" in procs:
            _stop_notebooks(st)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _kill_leftovers(settings.data_dir)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(path).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return path


def close(browser: Any) -> None:
    """Close the browser once no route handler can fail the teardown: a
    poll's request in flight when the test ends would reach its handler as
    the page closes ("Response has been disposed")."""
    for context in browser.contexts:
        for page in context.pages:
            page.unroute_all(behavior="ignoreErrors")
    browser.close()


@pytest.fixture
def browser(chromium_path: str) -> Iterator[Any]:
    # Per test: Playwright's sync API owns an event loop while it runs, which
    # must not outlive the test into pytest-asyncio's async tests.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            close(b)


@pytest.fixture
def browser_own_origins(chromium_path: str) -> Iterator[Any]:
    """`browser` resolving nb.test and *.nb.test to loopback."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = CHROMIUM_ARGS + OWN_ORIGINS_ARGS
        b = pw.chromium.launch(executable_path=chromium_path, args=args)
        try:
            yield b
        finally:
            close(b)


@pytest.fixture
def wait() -> Callable[..., Any]:
    """`wait_for` for test modules (conftest modules are not importable by name)."""
    return wait_for


@pytest.fixture
def artifacts() -> Path:
    """Where tests leave screenshots for review (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
