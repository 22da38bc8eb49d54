"""A running emulated cluster for tests: the kmock-based API emulator on a
loopback port, the fake kubelet, and runtimes talking to it through the
official client."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kmock
from kubernetes import client

from common.clock import Clock, FakeClock
from reconciler.runtime.kubernetes import KubernetesRuntime, KubernetesSettings

from .emulator import KubeEmulator
from .kubelet import Kubelet

NAMESPACE = "notebooks-test"


@dataclass
class Kube:
    emulator: KubeEmulator
    kubelet: Kubelet
    url: str
    # The cluster's clock, shared by the API server (its timestamps) and, by
    # default, every runtime: ages and deadlines move only when a test
    # advances it.
    clock: FakeClock = field(default_factory=FakeClock)
    # Where runtimes reach Marimo: by default a port that refuses connections
    # (the emulator runs no containers); a test may serve a fake Marimo there.
    marimo_root: str = ""
    runtimes: list[KubernetesRuntime] = field(default_factory=list)

    def runtime(
        self,
        *,
        clock: Clock | None = None,
        reconnect_backoff: tuple[float, ...] | None = None,
        **overrides: object,
    ) -> KubernetesRuntime:
        settings = KubernetesSettings(
            namespace=NAMESPACE,
            sail_image="sail:test",
            marimo_image="kernel:test",
            request_timeout_seconds=10,
            **overrides,  # type: ignore[arg-type]
        )
        cfg = client.Configuration()
        cfg.host = self.url
        rt = KubernetesRuntime(
            settings,
            client.ApiClient(cfg),
            reconnect_backoff=reconnect_backoff or (0.01, 0.05),
            marimo_root=lambda _nid: self.marimo_root,
            clock=clock or self.clock,
        )
        self.runtimes.append(rt)
        return rt

    def pods(self) -> list[str]:
        return self.emulator.names("pods")


@contextlib.asynccontextmanager
async def running_kube(clock: FakeClock | None = None) -> AsyncIterator[Kube]:
    """`clock`: the cluster's (`Kube.clock`); by default a FakeClock
    standing at the real time, so timestamps look as a real cluster's would."""
    clock = clock or FakeClock(datetime.now(UTC))
    emulator = KubeEmulator(clock=clock)
    refusing = socket.socket()  # bound, never listening: connections are refused
    refusing.bind(("127.0.0.1", 0))
    async with emulator, kmock.Server(emulator) as server:
        kubelet = Kubelet(emulator)
        k = Kube(emulator, kubelet, str(server.url).rstrip("/"), clock=clock)
        k.marimo_root = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        try:
            yield k
        finally:
            for rt in k.runtimes:
                await rt.close()
            await kubelet.close()
            refusing.close()
