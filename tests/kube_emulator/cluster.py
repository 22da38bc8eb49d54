"""A running emulated cluster for tests: the kmock-based API emulator on a
loopback port, the fake kubelet, and runtimes talking to it through the
official client."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import kmock
from kubernetes import client

from reconciler.runtime.kubernetes import KubernetesRuntime, KubernetesSettings

from .emulator import KubeEmulator
from .kubelet import Kubelet

NAMESPACE = "notebooks-test"


@dataclass
class Kube:
    emulator: KubeEmulator
    kubelet: Kubelet
    url: str
    # Where runtimes reach Marimo: by default a port that refuses connections
    # (the emulator runs no containers); a test may serve a fake Marimo there.
    marimo_root: str = ""
    runtimes: list[KubernetesRuntime] = field(default_factory=list)

    def runtime(self, **overrides: object) -> KubernetesRuntime:
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
            reconnect_backoff=(0.0, 0.05),
            marimo_root=lambda _nid: self.marimo_root,
        )
        self.runtimes.append(rt)
        return rt

    def pods(self) -> list[str]:
        return self.emulator.names("pods")


@contextlib.asynccontextmanager
async def running_kube() -> AsyncIterator[Kube]:
    emulator = KubeEmulator()
    refusing = socket.socket()  # bound, never listening: connections are refused
    refusing.bind(("127.0.0.1", 0))
    async with emulator, kmock.Server(emulator) as server:
        kubelet = Kubelet(emulator)
        k = Kube(emulator, kubelet, str(server.url).rstrip("/"))
        k.marimo_root = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        try:
            yield k
        finally:
            for rt in k.runtimes:
                await rt.close()
            await kubelet.close()
            refusing.close()
