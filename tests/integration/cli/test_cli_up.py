"""`notebooks up` as a new user runs it: a real subprocess on OS-chosen ports
with its own data directory and embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from cli.up import hold_data_dir
from common.tokens import hash_token

NOTEBOOKS = str(Path(sys.executable).parent / "notebooks")
CREDENTIAL_FIELDS = {"apiUrl", "proxyUrl", "databaseUrl", "organizationId", "memberId", "token"}


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the OS says are free: all held at once while they
    are chosen, so two picks can never be the same port (one after another,
    the OS may hand back a port just released)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(
    url: str, token: str | None = None, method: str = "GET", body: object = None
) -> tuple[int, bytes]:
    """One HTTP request: (status, body); status 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def answers(url: str) -> bool:
    return get(url)[0] == 200


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stack_processes(data_dir: Path) -> list[int]:
    """Live processes started for this data directory (the supervised children
    carry it in their environment; PostgreSQL in its command line)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            in_cmdline = any(str(data_dir) in part for part in proc.info["cmdline"] or [])
            in_env = proc.environ().get("NOTEBOOKS_DATA_DIR") == str(data_dir)
            in_dir = proc.cwd().startswith(str(data_dir))  # a notebook's Sail or Marimo
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if in_cmdline or in_env or in_dir:
            found.append(proc.pid)
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.logs = tmp_path
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "DATABASE_URL" and not k.startswith("NOTEBOOKS_")
        }
        (
            self.api_port,
            self.proxy_port,
            self.metrics_port,
            self.api_metrics_port,
            self.proxy_metrics_port,
        ) = free_ports(5)
        env.update(
            NOTEBOOKS_DATA_DIR=str(self.data_dir),
            NOTEBOOKS_API_PORT=str(self.api_port),
            NOTEBOOKS_PROXY_PORT=str(self.proxy_port),
            NOTEBOOKS_WORKER_METRICS_PORT=str(self.metrics_port),
            NOTEBOOKS_API_METRICS_PORT=str(self.api_metrics_port),
            NOTEBOOKS_PROXY_METRICS_PORT=str(self.proxy_metrics_port),
            NOTEBOOKS_LOG_FORMAT="json",
            NOTEBOOKS_STOP_GRACE_SECONDS="5",
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        self.out = self.logs / f"up{self.runs}.out"
        self.err = self.logs / f"up{self.runs}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            # a session of its own, like a shell's foreground job: Ctrl-C goes to its group
            self.proc = subprocess.Popen(
                [NOTEBOOKS, "up"], env=self.env, stdout=out, stderr=err, start_new_session=True
            )
        wait_for(self.is_up, 90, f"the banner (stderr: {self.err})")

    def is_up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"notebooks up exited: {self.err.read_text()[-20000:]}")
        return "notebooks is up" in self.out.read_text()

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def ctrl_c(self) -> int:
        """What a terminal does on Ctrl-C: SIGINT to the whole foreground group."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def child(self, name: str) -> int:
        """Pid of the supervised process `name` (0 while there is none)."""
        assert self.proc is not None
        for child in psutil.Process(self.proc.pid).children():
            with contextlib.suppress(psutil.Error):
                if child.cmdline()[-2:] == ["cli", name] and child.status() != "zombie":
                    return int(child.pid)
        return 0

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.err.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def stopped_cleanly(self) -> set[str]:
        return {
            str(e["process"])
            for e in self.log_events()
            if e.get("event") == "process_stopped" and e.get("returncode") == 0
        }

    def credentials(self) -> dict[str, str]:
        return json.loads((self.data_dir / "credentials.json").read_text())

    def kill_leftovers(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            if self.proc.poll() is None:
                self.proc.kill()
        for pid in stack_processes(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def stack(pg_tmp: Path) -> Iterator[Stack]:
    s = Stack(pg_tmp)
    try:
        yield s
    finally:
        s.kill_leftovers()


def assert_everything_stopped(stack: Stack, postmaster: int) -> None:
    wait_for(lambda: not alive(postmaster), 30, "PostgreSQL to stop")
    wait_for(lambda: not stack_processes(stack.data_dir), 30, "no process left")


def test_up_sets_up_runs_and_stops_cleanly_then_reuses_everything(stack: Stack) -> None:
    stack.start()
    creds = stack.credentials()
    # the banner comes once the API and the proxy answer: its curl works at once
    assert get(f"{creds['apiUrl']}/readyz")[0] == 200
    assert get(f"{creds['proxyUrl']}/healthz")[0] == 200
    assert set(creds) == CREDENTIAL_FIELDS
    assert creds["apiUrl"] == f"http://127.0.0.1:{stack.api_port}"
    assert creds["proxyUrl"] == f"http://127.0.0.1:{stack.proxy_port}"
    assert str(stack.data_dir / "pg") in creds["databaseUrl"]
    # secrets are the owner's only
    for name in ("credentials.json", "secrets.json"):
        assert stat.S_IMODE((stack.data_dir / name).stat().st_mode) == 0o600
    keys = json.loads((stack.data_dir / "secrets.json").read_text())
    assert len(keys["NOTEBOOKS_SECRET_KEY"]) >= 32 and ":" in keys["NOTEBOOKS_SIGNING_KEYS"]
    # the banner shows the URLs and the token
    banner = stack.out.read_text()
    assert creds["token"] in banner and f"127.0.0.1:{stack.api_port}/api/v1" in banner

    # the embedded PostgreSQL runs, migrated, with the org admin and their token
    postmaster = postmaster_pid(stack.data_dir)
    assert postmaster is not None and alive(postmaster)
    with psycopg.connect(creds["databaseUrl"]) as conn:
        row = conn.execute(
            "select m.organization_id, m.organization_admin from api_tokens t"
            " join members m on m.id = t.member_id where t.secret_hash = %s",
            (hash_token(creds["token"]),),
        ).fetchone()
        configs = conn.execute("select count(*) from workload_configs").fetchone()
    assert row == (creds["organizationId"], True)
    assert configs == (1,)  # a default workload config to start from

    # the supervised processes run with the settled environment
    wait_for(lambda: len(psutil.Process(stack.proc.pid).children()) >= 3, 30, "3 children")
    child_env = psutil.Process(stack.proc.pid).children()[0].environ()
    assert child_env["DATABASE_URL"] == creds["databaseUrl"]
    assert child_env["NOTEBOOKS_COOKIE_SECURE"] == "false"
    assert child_env["NOTEBOOKS_SECRET_KEY"] == keys["NOTEBOOKS_SECRET_KEY"]

    # api, proxy and worker serve on the configured ports, and the printed
    # token works on the API
    api = creds["apiUrl"]
    wait_for(lambda: answers(f"{api}/healthz"), 60, "the API's /healthz")
    # ready: the database is reachable and `up` applied every migration
    status, body = get(f"{api}/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready", body
    status, body = get(f"{api}/api/v1/me", creds["token"])
    assert status == 200, body
    me = json.loads(body)
    assert (me["id"], me["organizationId"], me["organizationAdmin"]) == (
        creds["memberId"],
        creds["organizationId"],
        True,
    )
    assert get(f"{api}/api/v1/me", "nbk_not_a_token")[0] == 401
    wait_for(lambda: answers(f"{creds['proxyUrl']}/healthz"), 60, "the proxy's /healthz")
    # each process's metrics on a listener of its own, named in the banner
    for name, port in (
        ("worker", stack.metrics_port),
        ("api", stack.api_metrics_port),
        ("proxy", stack.proxy_metrics_port),
    ):
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert f"{name} {metrics}" in banner
        wait_for(lambda: answers(metrics), 60, f"the {name}'s /metrics")  # noqa: B023

    # `notebooks admin` without DATABASE_URL joins the running embedded server
    # (and leaves it running when done)
    done = subprocess.run(
        [NOTEBOOKS, "admin", "member", "create", "--email", "b@x.test", "--name", "B", "--json"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["organizationId"] == creds["organizationId"]
    assert alive(postmaster) and get(f"{api}/api/v1/me", creds["token"])[0] == 200

    # a crashed process is restarted (after a logged exit) and serves again
    api_pid = stack.child("api")
    os.kill(api_pid, signal.SIGKILL)
    wait_for(lambda: stack.child("api") not in (0, api_pid), 30, "a new api process")
    wait_for(lambda: answers(f"{api}/healthz"), 60, "the restarted API")
    exits = [e for e in stack.log_events() if e.get("event") == "process_exited"]
    assert [(e["process"], e["pid"], e["returncode"]) for e in exits] == [
        ("api", api_pid, -signal.SIGKILL)
    ]
    assert exits[0]["restart_in_seconds"] == 1.0

    # Ctrl-C stops everything: children, PostgreSQL; nothing is left behind
    assert stack.ctrl_c() == 0
    assert_everything_stopped(stack, postmaster)
    # each process stopped on SIGTERM by itself (no SIGKILL after the grace)
    assert stack.stopped_cleanly() == {"api", "worker", "proxy"}

    # The second run reuses the organization, the member and the token.
    stack.start()
    assert stack.credentials() == creds
    assert creds["token"] in stack.out.read_text()
    assert json.loads((stack.data_dir / "secrets.json").read_text()) == keys
    postmaster = postmaster_pid(stack.data_dir)
    assert postmaster is not None and alive(postmaster)
    with psycopg.connect(creds["databaseUrl"]) as conn:
        assert conn.execute("select count(*) from organizations").fetchone() == (1,)
        assert conn.execute("select count(*) from api_tokens").fetchone() == (1,)
    # SIGTERM (what a service manager sends) stops it as cleanly as Ctrl-C
    assert stack.stop(signal.SIGTERM) == 0
    assert_everything_stopped(stack, postmaster)


def test_a_killed_up_leaves_no_children_and_the_next_run_adopts_its_database(
    stack: Stack,
) -> None:
    stack.start()
    creds = stack.credentials()
    assert stack.proc is not None
    up = psutil.Process(stack.proc.pid)
    wait_for(lambda: len(up.children()) >= 3, 30, "3 children")
    children = [c.pid for c in up.children()]
    postmaster = postmaster_pid(stack.data_dir)
    assert postmaster is not None

    stack.proc.kill()  # SIGKILL: no chance to clean up
    stack.proc.wait(timeout=10)
    # the children die with their supervisor rather than linger as orphans ...
    wait_for(lambda: not any(alive(pid) for pid in children), 30, "children to die")
    # ... while PostgreSQL keeps running, to be picked up again
    assert alive(postmaster)

    stack.start()
    assert stack.credentials() == creds
    assert postmaster_pid(stack.data_dir) == postmaster
    # the dead run's handle on the database does not keep it running at the end
    assert stack.stop(signal.SIGINT) == 0
    assert_everything_stopped(stack, postmaster)


def test_a_killed_embedded_postgresql_is_started_again_and_the_stack_recovers(
    stack: Stack,
) -> None:
    """Killed under a running stack (out of memory, an operator's kill -9):
    `up` starts it again, says so, and the API serves again without a
    restart of the stack."""
    stack.start()
    creds = stack.credentials()
    api = creds["apiUrl"]
    wait_for(lambda: answers(f"{api}/readyz"), 60, "the API to be ready")
    postmaster = postmaster_pid(stack.data_dir)
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)
    wait_for(lambda: not alive(postmaster), 30, "the old PostgreSQL to die")

    def back() -> bool:
        pid = postmaster_pid(stack.data_dir)
        return pid not in (None, postmaster) and alive(pid)

    wait_for(back, 60, "PostgreSQL to be started again")
    wait_for(lambda: get(f"{api}/api/v1/me", creds["token"])[0] == 200, 60, "the API to serve")
    assert "embedded_postgres_restarted" in {e.get("event") for e in stack.log_events()}
    new_postmaster = postmaster_pid(stack.data_dir)
    assert new_postmaster is not None
    assert stack.ctrl_c() == 0
    assert_everything_stopped(stack, new_postmaster)


@pytest.mark.parametrize(
    "variable",
    [
        "NOTEBOOKS_PROXY_PORT",
        "NOTEBOOKS_WORKER_METRICS_PORT",
        "NOTEBOOKS_API_METRICS_PORT",
        "NOTEBOOKS_PROXY_METRICS_PORT",
    ],
)
def test_a_taken_port_is_refused_before_anything_starts(stack: Stack, variable: str) -> None:
    port = int(stack.env[variable])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [NOTEBOOKS, "up"], env=stack.env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is not available" in done.stderr
    assert variable in done.stderr
    assert not (stack.data_dir / "pg").exists()  # no database was started


@pytest.mark.parametrize("variable", ["NOTEBOOKS_API_HOST", "NOTEBOOKS_WORKER_METRICS_HOST"])
def test_a_host_that_is_no_address_is_named_not_taken_for_a_port_clash(
    stack: Stack, variable: str
) -> None:
    env = {**stack.env, variable: "bad host!"}
    done = subprocess.run([NOTEBOOKS, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("notebooks up: error: 'bad host!' is not an address of this machine")
    assert line.endswith(f"check {variable}") and "another `notebooks up`" not in line
    assert not (stack.data_dir / "pg").exists()  # no database was started


def test_a_second_up_on_a_data_directory_in_use_is_refused_before_anything_starts(
    stack: Stack,
) -> None:
    """Two stacks on one data directory (other ports) would each make keys,
    race the first-run set-up and half-serve one database."""
    stack.data_dir.mkdir(parents=True)
    with hold_data_dir(stack.data_dir):  # as the first `notebooks up` holds it
        done = subprocess.run(
            [NOTEBOOKS, "up"], env=stack.env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"{stack.data_dir} is in use by another `notebooks up` (pid {os.getpid()})" in (
        done.stderr
    )
    assert not (stack.data_dir / "pg").exists()  # no database was started
    assert not (stack.data_dir / "secrets.json").exists()


def test_two_settings_on_one_port_are_refused_before_anything_starts(stack: Stack) -> None:
    """Each bind alone would succeed; started, one child would crash-loop."""
    env = {**stack.env, "NOTEBOOKS_API_METRICS_PORT": stack.env["NOTEBOOKS_WORKER_METRICS_PORT"]}
    done = subprocess.run([NOTEBOOKS, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "NOTEBOOKS_API_METRICS_PORT and NOTEBOOKS_WORKER_METRICS_PORT both name port" in (
        done.stderr
    )
    assert not (stack.data_dir / "pg").exists()  # no database was started


def test_admin_without_a_running_stack_starts_and_stops_the_embedded_database(
    stack: Stack,
) -> None:
    def admin(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NOTEBOOKS, "admin", *argv, "--json"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = admin("org", "list")
    assert missing.returncode == 1 and "no database" in missing.stderr
    assert not (stack.data_dir / "pg").exists()
    migrated = subprocess.run(
        [NOTEBOOKS, "migrate"], env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    # the server was created, and stopped again after the command
    assert (stack.data_dir / "pg" / "PG_VERSION").exists()
    assert postmaster_pid(stack.data_dir) is None
    created = admin("org", "create", "--name", "Solo")
    assert created.returncode == 0, created.stderr
    listed = admin("org", "list")
    assert [o["id"] for o in json.loads(listed.stdout)] == [json.loads(created.stdout)["id"]]
    assert not stack_processes(stack.data_dir)


def test_up_with_database_url_uses_that_database(stack: Stack, database_url_for_test: str) -> None:
    stack.env["DATABASE_URL"] = database_url_for_test
    stack.start()
    creds = stack.credentials()
    assert creds["databaseUrl"] == database_url_for_test
    assert not (stack.data_dir / "pg").exists()
    with psycopg.connect(database_url_for_test) as conn:
        assert conn.execute("select count(*) from members").fetchone() == (1,)
    assert stack.ctrl_c() == 0
    wait_for(lambda: not stack_processes(stack.data_dir), 30, "no process left")


def notebook_processes(data_dir: Path) -> list[int]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.cwd().startswith(str(data_dir / "notebooks")) and proc.status() != "zombie":
                out.append(proc.pid)
    return out


@pytest.mark.slow
def test_notebooks_left_running_are_adopted_by_the_next_run(stack: Stack) -> None:
    stack.start()
    creds = stack.credentials()
    api, token = creds["apiUrl"] + "/api/v1", creds["token"]
    wait_for(lambda: answers(creds["apiUrl"] + "/healthz"), 60, "the API")
    configs = json.loads(get(f"{api}/workloads/configs", token)[1])
    status, body = get(
        f"{api}/workloads/notebooks",
        token,
        "POST",
        {"name": "kept", "workloadConfigId": configs["items"][0]["id"]},
    )
    assert status == 201, body
    nb = json.loads(body)["item"]["notebookId"]

    def notebook() -> dict[str, object]:
        return json.loads(get(f"{api}/workloads/notebooks/{nb}", token)[1])["included"][
            "notebooks"
        ][0]

    assert get(f"{api}/workloads/notebooks/{nb}/start", token, "POST")[0] == 202
    wait_for(lambda: notebook()["status"] == "running", 180, "the notebook to run")
    session = notebook()["sessionId"]
    kept = notebook_processes(stack.data_dir)
    assert len(kept) >= 2  # Sail and Marimo

    assert stack.ctrl_c() == 0
    # the stack is down, the notebook's processes are not
    assert all(alive(pid) for pid in kept)

    stack.start()
    wait_for(lambda: answers(creds["apiUrl"] + "/healthz"), 60, "the API again")
    assert notebook()["sessionId"] == session
    assert notebook()["status"] in ("running", "idle")
    # the new worker owns them: stopping the notebook ends those very processes
    assert get(f"{api}/workloads/notebooks/{nb}/stop", token, "POST")[0] == 202
    wait_for(lambda: notebook()["status"] == "stopped", 120, "the notebook to stop")
    wait_for(lambda: not any(alive(pid) for pid in kept), 30, "the notebook's processes to end")
    assert stack.ctrl_c() == 0


def readme_quick_start() -> str:
    """The README's shell block a new user pastes after `make run`."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    after = readme.split("In a second terminal", 1)[1]
    return after.split("```", 2)[1]


def test_the_readme_quick_start_runs_as_written(stack: Stack) -> None:
    """Pasted into a shell (stopping at the first failure), against a stack on
    other ports and another data directory, as the README says it may be."""
    stack.start()
    script = "set -euo pipefail\n" + readme_quick_start()
    done = subprocess.run(
        ["bash", "-c", script],
        env=stack.env,
        cwd=stack.logs,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # each step answered what the README says it does
    out = done.stdout
    assert '"organizationId"' in out  # /me
    assert "running" in out.splitlines()  # the wait loop saw it
    assert f"127.0.0.1:{stack.proxy_port}/notebooks/" in out and "_open?token=" in out
    assert '"toStatus":"running"' in out.replace(" ", "")  # the history
    creds = stack.credentials()
    api, token = creds["apiUrl"] + "/api/v1", creds["token"]
    notebooks = json.loads(get(f"{api}/workloads/notebooks", token)[1])["items"]
    assert len(notebooks) == 1
    nb = notebooks[0]["notebookId"]

    def status() -> object:
        return json.loads(get(f"{api}/workloads/notebooks/{nb}", token)[1])["included"][
            "notebooks"
        ][0]["status"]

    wait_for(lambda: status() == "stopped", 120, "the notebook to stop")
    assert stack.ctrl_c() == 0
