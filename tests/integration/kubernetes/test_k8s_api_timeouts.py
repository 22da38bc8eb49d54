"""NOTEBOOKS_K8S_REQUEST_TIMEOUT_SECONDS bounds every call: the client makes
one attempt, on one connection, and the worker's own back-off retries.

urllib3's default retry policy (three retries of a GET's or DELETE's read
timeout or dropped connection), which the official client keeps unless
told otherwise, made a call to a hung API server take four timeouts on four
connections, and a watch on one blind for four of its read timeouts."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from kube_emulator import eventually
from kubernetes import client

from reconciler.runtime.kubernetes import KubernetesRuntime, KubernetesSettings
from reconciler.runtime.kubernetes.api import KubeApi

TIMEOUT = 1.0


class Silent:
    """An API server that accepts connections and then never answers
    (`hang`), or reads the request and hangs up without a word."""

    def __init__(self, *, hang: bool) -> None:
        self.hang = hang
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted: list[tuple[socket.socket, tuple[str, int]]] = []
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # shut down: the test is over
            self.accepted.append((conn, peer))
            if not self.hang:
                t = threading.Thread(target=self._hang_up, args=(conn,), daemon=True)
                self.threads.append(t)
                t.start()

    @staticmethod
    def _hang_up(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)  # the request (or nothing, from `connections`' marker)
            conn.shutdown(socket.SHUT_RDWR)

    async def connections(self) -> int:
        """Every connection made so far, once accepted: a connection of our
        own, made now, is accepted after all earlier ones (one queue)."""
        marker = socket.create_connection(self.sock.getsockname())
        mine = marker.getsockname()
        try:
            await eventually(lambda: _true(any(peer == mine for _, peer in self.accepted)))
        finally:
            marker.close()
        return len(self.accepted) - 1

    def close(self) -> None:
        for sock in [self.sock, *(conn for conn, _ in self.accepted)]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it
        for t in self.threads:
            t.join(5)
            assert not t.is_alive()
        for sock in [self.sock, *(conn for conn, _ in self.accepted)]:
            sock.close()


@pytest.fixture
def hung() -> Iterator[Silent]:
    server = Silent(hang=True)
    yield server
    server.close()


@pytest.fixture
def hanging_up() -> Iterator[Silent]:
    server = Silent(hang=False)
    yield server
    server.close()


def runtime(url: str) -> KubernetesRuntime:
    cfg = client.Configuration()
    cfg.host = url
    settings = KubernetesSettings(namespace="ns", request_timeout_seconds=TIMEOUT)
    return KubernetesRuntime(settings, client.ApiClient(cfg))


CALLS: dict[str, Callable[[KubeApi], Awaitable[Any]]] = {
    "list": lambda api: api.list("Pod", "a=b"),
    "get": lambda api: api.get("Secret", "x"),
    "delete": lambda api: api.delete("Pod", "x"),
    "create": lambda api: api.create({"kind": "Secret", "metadata": {"name": "x"}}),
}


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_call_to_a_hung_api_server_ends_after_one_timeout(hung: Silent, call: str) -> None:
    rt = runtime(hung.url)
    try:
        began = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017, PT011  (urllib3's, whichever)
            await CALLS[call](rt.api)
        took = time.monotonic() - began
    finally:
        await rt.close()
    assert await hung.connections() == 1
    # One timeout, plus a first call's warm-up (was 4 timeouts for list, get, delete).
    assert took < 2.5 * TIMEOUT


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_dropped_connection_is_not_retried_by_the_client(
    hanging_up: Silent, call: str
) -> None:
    rt = runtime(hanging_up.url)
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011
            await CALLS[call](rt.api)
    finally:
        await rt.close()
    assert await hanging_up.connections() == 1


async def test_a_watch_request_the_server_drops_is_one_connection_then_the_back_off(
    hanging_up: Silent,
) -> None:
    """The watch's own back-off does the retrying (its read timeout is the
    server's watch timeout plus 30 s: four of those left it blind ~22 min)."""
    rt = runtime(hanging_up.url)
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011
            async for _ in rt.watcher._stream("1"):
                pass
    finally:
        await rt.close()
    assert await hanging_up.connections() == 1


async def _true(value: bool) -> bool:
    return value
