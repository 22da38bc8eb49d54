"""`notebooks up` (behind `make run`): the whole stack on one machine.

Embedded PostgreSQL under the data directory unless DATABASE_URL is set,
migrations, first-run organization/admin/token, credentials file, then the
Procfile's api, worker and proxy under the supervisor until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import psycopg
import structlog

from cli.bootstrap import (
    CREDENTIALS_FILE,
    ensure_first_admin,
    ensure_keys,
    read_json,
    write_credentials,
)
from cli.database import (
    CliError,
    data_dir_from_env,
    embedded,
    own_data_dir,
    pgdata_of,
    process_gone,
    refuse_embedded_if_required,
    revive_embedded,
)
from cli.supervisor import Backoff, ProcessSpec, Supervisor, specs_from_procfile
from common.logging import configure_logging
from common.notebook_origin import public_scheme
from common.settings import Settings, listen_url
from sql.migrate import migrate

log = structlog.get_logger("up")

PROCESSES = ("api", "worker", "proxy")
DEFAULT_PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"
UP_LOCK = ".up.lock"  # in the data directory: held by the one `up` using it


@contextlib.contextmanager
def _database(env: dict[str, str], data_dir: Path) -> Iterator[str]:
    if env.get("DATABASE_URL"):
        yield env["DATABASE_URL"]
        return
    refuse_embedded_if_required(env)
    log.info("embedded_postgres_starting", pgdata=str(data_dir / "pg"))
    with embedded(data_dir, create=True) as url:
        log.info("embedded_postgres_started", database_url=url)
        try:
            yield url
        finally:
            log.info("embedded_postgres_stopping")


def stack_env_preview(base: dict[str, str]) -> dict[str, str]:
    """Enough of the environment to read the listen addresses before set-up."""
    placeholder = "x" * 32
    return {
        "DATABASE_URL": "postgresql://unused",  # the embedded one is not made yet
        "NOTEBOOKS_SECRET_KEY": placeholder,
        "NOTEBOOKS_SIGNING_KEYS": f"k:{placeholder}",
        **base,
    }


def stack_env(base: dict[str, str], data_dir: Path, database_url: str) -> dict[str, str]:
    """The environment the children run with: the caller's, plus what `up` settled."""
    env = dict(base)
    env["DATABASE_URL"] = database_url
    env["NOTEBOOKS_DATA_DIR"] = str(data_dir)
    env.update(ensure_keys(data_dir, env))
    # Plain http (the local default): a Secure cookie would never come back.
    # Behind https (browsers reach notebooks so), cookies stay Secure.
    scheme = public_scheme(
        env.get("NOTEBOOKS_PROXY_PUBLIC_URL", "").strip(),
        env.get("NOTEBOOKS_PROXY_NOTEBOOK_URL", "").strip(),
    )
    if scheme != "https":
        env.setdefault("NOTEBOOKS_COOKIE_SECURE", "false")
    env.setdefault("NOTEBOOKS_RUNTIME", "local")
    # Children log to the same terminal; make their Python unbuffered.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def check_ports_free(
    settings: Settings, env: dict[str, str], *, leftover_wait_seconds: float | None = None
) -> None:
    """Fail before starting anything when a port is taken (often: another
    `notebooks up`), instead of letting the child crash-loop. A port held by
    a child of an earlier `up` that was killed (`kill -9`: the child got its
    SIGTERM and finishes its work) is waited for, up to the stop grace and
    a margin: an `up` started at once after would otherwise refuse."""
    wanted = [
        ("NOTEBOOKS_API_PORT", settings.api_host, settings.api_port),
        ("NOTEBOOKS_PROXY_PORT", settings.proxy_host, settings.proxy_port),
        *metrics_listeners(settings, env),
    ]
    _refuse_shared_ports(wanted)
    if leftover_wait_seconds is None:
        leftover_wait_seconds = settings.stop_grace_seconds + LEFTOVER_MARGIN_SECONDS
    for variable, host, port in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        try:
            _bind_once(family, host, port)
        except socket.gaierror as e:  # the host, not the port
            raise CliError(
                f"{host!r} is not an address of this machine ({e.strerror}): "
                f"check {variable.removesuffix('PORT')}HOST"
            ) from None
        except OSError as e:
            if (leftover := _leftover_on(port)) is not None:
                _wait_for_leftover(leftover, where, leftover_wait_seconds)
                with contextlib.suppress(OSError):
                    _bind_once(family, host, port)
                    continue
            raise CliError(
                f"{where} is not available ({e.strerror}); is another `notebooks up` "
                f"running? Set {variable} to use another port"
            ) from None


LEFTOVER_MARGIN_SECONDS = 20.0
# In each child's environment: the `up` that started it, so that a later
# `up` knows a process left by one that was killed from any other.
UP_PID = "_NOTEBOOKS_UP_PID"  # not a setting: the underscore keeps it out of theirs


def _bind_once(family: socket.AddressFamily, host: str, port: int) -> None:
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


def _leftover_on(port: int) -> psutil.Process | None:
    """The process listening on `port` if it is an api, worker or proxy that
    a `notebooks up` started (`UP_PID` in its environment) and that `up` is
    gone, else None (one started by hand, or a live `up`'s, is not ours to
    wait for)."""
    try:
        listening = [
            c.pid
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
        ]
    except psutil.Error:
        return None
    for pid in listening:
        try:
            proc = psutil.Process(pid)
            command = proc.cmdline()
            started_by = int(proc.environ().get(UP_PID, "0"))
        except (psutil.Error, ValueError):
            continue
        ours = command[-3:-1] == ["-m", "cli"] and command[-1] in PROCESSES
        if ours and started_by and process_gone(started_by):
            return proc
    return None


def _wait_for_leftover(proc: psutil.Process, where: str, seconds: float) -> None:
    log.warning(
        "waiting_for_leftover",
        pid=proc.pid,
        port=where,
        hint="a process of an earlier `notebooks up` that was killed is still stopping",
    )
    try:
        proc.wait(timeout=seconds)
    except psutil.TimeoutExpired:
        raise CliError(
            f"{where} is still held by pid {proc.pid}, a process left by an earlier "
            f"`notebooks up` that was killed: stop it (kill {proc.pid}) and start again"
        ) from None
    except psutil.NoSuchProcess:
        pass


_ANY_HOST = ("", "0.0.0.0", "::")


def _refuse_shared_ports(wanted: list[tuple[str, str, int]]) -> None:
    """Two settings naming one port (say the API's metrics port set to the
    worker's): each bind alone succeeds, then one child crash-loops."""
    for i, (first, host1, port1) in enumerate(wanted):
        for second, host2, port2 in wanted[i + 1 :]:
            overlap = host1 == host2 or host1 in _ANY_HOST or host2 in _ANY_HOST
            if port1 == port2 != 0 and overlap:
                raise CliError(f"{first} and {second} both name port {port1}; change one")


def metrics_listeners(settings: Settings, env: dict[str, str]) -> list[tuple[str, str, int]]:
    """(variable, host, port) of each process's metrics listener that is on."""
    from cli.main import metrics_port

    listeners = [
        ("NOTEBOOKS_API_METRICS_PORT", settings.api_metrics_host, settings.api_metrics_port),
        ("NOTEBOOKS_PROXY_METRICS_PORT", settings.proxy_metrics_host, settings.proxy_metrics_port),
        ("NOTEBOOKS_WORKER_METRICS_PORT", settings.worker_metrics_host, metrics_port(None, env)),
    ]
    return [(variable, host, port) for variable, host, port in listeners if port is not None]


_METRICS_OF = {
    "NOTEBOOKS_API_METRICS_PORT": "api",
    "NOTEBOOKS_PROXY_METRICS_PORT": "proxy",
    "NOTEBOOKS_WORKER_METRICS_PORT": "worker",
}


# Where Marimo's editor takes a notebook's file for a temporary one and never
# saves it (its frontend: a path starting so is "not persistent"): Save stays
# disabled and autosave off, and the work is lost at the next stop.
_MARIMO_UNSAVED_PREFIXES = ("/tmp/", "/var/folders/")


def unsaved_warning(data_dir: Path) -> str | None:
    where = str(data_dir.resolve()) + "/"
    for prefix in _MARIMO_UNSAVED_PREFIXES:
        if where.startswith(prefix):
            return (
                f"{data_dir} is under {prefix.rstrip('/')}: Marimo will not save notebooks"
                " there (it takes them for temporary files); set NOTEBOOKS_DATA_DIR to"
                " another directory"
            )
    return None


def banner(settings: Settings, token: str, credentials: Path, env: dict[str, str]) -> str:
    metrics = [
        f"{_METRICS_OF[variable]} {listen_url(host, port)}/metrics"
        for variable, host, port in metrics_listeners(settings, env)
    ]
    return "\n".join(
        [
            "",
            "notebooks is up",
            f"  API:          {settings.api_public_url}/api/v1",
            f"  web console:  {settings.api_public_url}/  (sign in with the token)",
            f"  proxy:        {settings.proxy_public_url}",
            # each on a listener of its own, not the public ports
            f"  metrics:      {', '.join(metrics) or 'off'}",
            f"  token:        {token}",
            f"  credentials:  {credentials}",
            f"  try:          curl -H 'Authorization: Bearer {token}' "
            f"{settings.api_public_url}/api/v1/me",
            "  stop with Ctrl-C",
            *(
                [f"  WARNING:      {warning}"]
                if (warning := unsaved_warning(credentials.parent))
                else []
            ),
            "",
        ]
    )


# How often `up` looks whether its embedded PostgreSQL still runs, and how
# long a shutdown waits for a start of it under way.
DATABASE_WATCH_SECONDS = 1.0
DATABASE_START_SECONDS = 15.0


async def _keep_database(data_dir: Path, stop: asyncio.Event) -> None:
    """Start the embedded PostgreSQL again if it stops under the stack (the
    API, worker and proxy are restarted by the supervisor; without this the
    stack would answer 503 until Ctrl-C). Tried again each round it fails."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DATABASE_WATCH_SECONDS)
        if stop.is_set():
            return
        try:
            if await asyncio.to_thread(revive_embedded, data_dir):
                log.warning("embedded_postgres_restarted", pgdata=str(pgdata_of(data_dir)))
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.error("embedded_postgres_down", error=" ".join(str(exc).split())[:300])


# How often `up` asks whether the API and the proxy answer yet, to say it is
# up, and how often it says what it still waits for.
READY_POLL_SECONDS = 0.2
READY_NAG_SECONDS = 30.0


async def _announce_when_ready(text: str, urls: list[str], stop: asyncio.Event) -> None:
    """Print `text` (the banner) once every URL answers 200: a user pasting
    its curl at once would otherwise meet a refused connection."""
    loop = asyncio.get_running_loop()
    nag_at = loop.time() + READY_NAG_SECONDS
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for url in urls:
            last = "no answer yet"
            while not stop.is_set():
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            break
                        last = f"status {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = repr(exc)
                if loop.time() >= nag_at:  # a child crash-looping says why in its own lines
                    log.warning("still_waiting", url=url, last=last)
                    nag_at = loop.time() + READY_NAG_SECONDS
                await asyncio.sleep(READY_POLL_SECONDS)
    if not stop.is_set():
        print(text, flush=True)


async def _supervise(
    supervisor: Supervisor,
    database_dir: Path | None = None,
    banner: tuple[str, list[str]] | None = None,
) -> None:
    """Run the stack until a signal; `database_dir`: the data directory whose
    embedded PostgreSQL is kept running meanwhile; `banner`: what to print
    once the given URLs answer."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("stopping_now", reason="second signal: no grace period")
            supervisor.hurry.set()
        else:
            log.info("stopping", grace_seconds=supervisor.grace_seconds)
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    keeper = None if database_dir is None else loop.create_task(_keep_database(database_dir, stop))
    announcer = None if banner is None else loop.create_task(_announce_when_ready(*banner, stop))
    try:
        await supervisor.run(stop)
    finally:
        stop.set()
        if announcer is not None:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
        if keeper is not None:
            # A start under way (pg_ctl waits up to 10 s) is let finish, within
            # bounds: the thread cannot be cancelled, only no longer awaited.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(keeper, DATABASE_START_SECONDS)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """One `notebooks up` per data directory at a time. A second, started
    beside the first (other ports), would make keys of its own, race the
    first-run set-up and its `create database`, and leave two stacks each
    half-serving one database. An flock, so a killed `up` never leaves it
    held; its file names the holder's pid for the message."""
    fd = os.open(data_dir / UP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise CliError(
                f"{data_dir} is in use by another `notebooks up` (pid {holder}): stop it, "
                "or give this one a data directory of its own (NOTEBOOKS_DATA_DIR)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def run_up(base_env: dict[str, str], procfile: Path = DEFAULT_PROCFILE) -> int:
    # Every setting is checked (a malformed one is a SettingsError: one line,
    # exit code 1) before anything is started or even logged.
    preview = stack_env_preview(base_env)
    preview_settings = Settings.from_env(preview)
    configure_logging(preview_settings.log_format, preview_settings.log_level)
    specs = specs_from_procfile(procfile, PROCESSES)
    data_dir = data_dir_from_env(base_env)
    own_data_dir(data_dir)
    with hold_data_dir(data_dir):
        check_ports_free(preview_settings, preview)
        return _run_up(base_env, specs, data_dir)


def _run_up(base_env: dict[str, str], specs: list[ProcessSpec], data_dir: Path) -> int:
    # SIGTERM during set-up should unwind (and stop PostgreSQL) like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with _database(base_env, data_dir) as database_url:
            env = stack_env(base_env, data_dir, database_url)
            settings = Settings.from_env(env)
            applied = asyncio.run(migrate(database_url))
            log.info("migrations_applied", versions=applied)
            credentials_path = data_dir / CREDENTIALS_FILE
            admin = ensure_first_admin(database_url, read_json(credentials_path))
            write_credentials(
                data_dir,
                api_url=settings.api_public_url,
                proxy_url=settings.proxy_public_url,
                database_url=database_url,
                admin=admin,
            )
            ready = [
                listen_url(settings.api_host, settings.api_port) + "/readyz",
                listen_url(settings.proxy_host, settings.proxy_port) + "/healthz",
            ]
            text = banner(settings, admin.token, credentials_path, env)
            supervisor = Supervisor(
                specs,
                env={**env, UP_PID: str(os.getpid())},  # whose children they are (_leftover_on)
                backoff=Backoff(),
                grace_seconds=float(settings.stop_grace_seconds),
            )
            embedded_dir = None if base_env.get("DATABASE_URL") else data_dir
            asyncio.run(_supervise(supervisor, embedded_dir, (text, ready)))
            log.info("stack_stopped")
            # Let PostgreSQL stop in peace (a fraction of a second).
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
    except KeyboardInterrupt:
        log.info("interrupted")
    except psycopg.OperationalError as e:
        raise CliError(f"cannot use the database: {e}") from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0


def main() -> int:
    return run_up(dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
