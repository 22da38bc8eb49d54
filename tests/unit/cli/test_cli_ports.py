"""`notebooks up` checks its ports before it starts anything, on IPv6
listen addresses too (the check bound an IPv4 socket, and refused `::1`
with "Address family not supported" as if the port were taken)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from cli.database import CliError
from cli.up import UP_PID, check_ports_free
from common.settings import Settings

REQUIRED = {
    "DATABASE_URL": "postgresql:///x",
    "NOTEBOOKS_SECRET_KEY": "m" * 40,
    "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
}


def _free(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _env(host: str, api_port: int) -> dict[str, str]:
    proxy = _free(socket.AF_INET6, "::1")
    ports = [proxy, *(_free(socket.AF_INET, "127.0.0.1") for _ in range(3))]  # metrics: v4
    return {
        **REQUIRED,
        "NOTEBOOKS_API_HOST": host,
        "NOTEBOOKS_API_PORT": str(api_port),
        "NOTEBOOKS_PROXY_HOST": host,
        "NOTEBOOKS_PROXY_PORT": str(ports[0]),
        "NOTEBOOKS_WORKER_METRICS_PORT": str(ports[1]),
        "NOTEBOOKS_API_METRICS_PORT": str(ports[2]),
        "NOTEBOOKS_PROXY_METRICS_PORT": str(ports[3]),
    }


def test_free_ports_on_an_ipv6_address_pass_and_a_taken_one_is_named() -> None:
    api_port = _free(socket.AF_INET6, "::1")
    env = _env("::1", api_port)
    check_ports_free(Settings.from_env(env), env)
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", api_port))
        taken.listen()
        with pytest.raises(
            CliError, match=rf"\[::1\]:{api_port} is not available.*NOTEBOOKS_API_PORT"
        ):
            check_ports_free(Settings.from_env(env), env)


# An api, worker or proxy of a killed `up` as the port check sees it: its
# command line ends `-m cli worker` and its environment names the `up` that
# started it, a process that has exited. It holds the port, then finishes
# its work (`LINGER` seconds) and exits.
LEFTOVER = """
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen()
print("listening", flush=True)
time.sleep(float(os.environ["LINGER"]))
"""


def _gone_pid() -> int:
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended.pid


@contextmanager
def _leftover(
    port: int, linger: float, up_pid: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    up = _gone_pid() if up_pid is None else up_pid
    env = {**os.environ, "PORT": str(port), "LINGER": str(linger), UP_PID: str(up)}
    command = [sys.executable, "-c", LEFTOVER, "-m", "cli", "worker"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_port_held_by_a_killed_ups_process_is_waited_for() -> None:
    """`kill -9` of `up`, then `up` again at once: its worker (SIGTERM from
    its parent's death) was still finishing a pass on its metrics port, and
    the new `up` refused as if another ran (a crash audit). The killed `up`
    may still be a zombie, not yet reaped: gone all the same."""
    api_port = _free(socket.AF_INET, "127.0.0.1")
    env = _env("127.0.0.1", api_port)
    zombie = subprocess.Popen(["true"])  # exited, not reaped until the end
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    try:
        for up_pid in (None, zombie.pid):  # reaped; a zombie
            with _leftover(api_port, linger=0.5, up_pid=up_pid) as leftover:
                check_ports_free(Settings.from_env(env), env, leftover_wait_seconds=30)
                assert leftover.poll() is not None  # gone: waited for, not bound beside
    finally:
        zombie.wait()


def test_a_killed_ups_process_that_does_not_stop_is_named() -> None:
    api_port = _free(socket.AF_INET, "127.0.0.1")
    env = _env("127.0.0.1", api_port)
    with (
        _leftover(api_port, linger=60) as leftover,
        pytest.raises(CliError, match=rf"still held by pid {leftover.pid}.*kill {leftover.pid}"),
    ):
        check_ports_free(Settings.from_env(env), env, leftover_wait_seconds=0.2)


def test_a_process_of_a_live_up_or_started_by_hand_is_not_waited_for() -> None:
    """Only what a killed `up` left is waited for: a browser-test stack's
    api or one started from a shell is another's, refused at once."""
    api_port = _free(socket.AF_INET, "127.0.0.1")
    env = _env("127.0.0.1", api_port)
    for up_pid in (os.getpid(), 0):  # an `up` that runs; none named
        with _leftover(api_port, linger=60, up_pid=up_pid) as other:
            with pytest.raises(CliError, match="is not available"):
                check_ports_free(Settings.from_env(env), env, leftover_wait_seconds=30)
            assert other.poll() is None  # not waited for
