"""The worker's Role in ops/ grants exactly what the runtime calls: every
request the runtime sends to the API server (recorded by the emulator while it
starts, pools, observes, reads logs, replaces, stops, deletes and watches) is allowed, and
nothing is allowed that it never sends, except what it must hold to grant a
cluster-mode Sail driver (RBAC forbids granting more than one holds)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from kube_emulator import eventually
from kube_emulator.cluster import Kube

from reconciler.runtime.base import Observation, Phase, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.settings import KubernetesSettings

CLUSTER_SPEC = SessionSpec("NB", "S1", "tok", WorkloadSpec(mode="cluster"), "/notebooks/NB")

ROOT = Path(__file__).resolve().parents[3]
# kmock's action names → the RBAC verbs of those requests
VERBS = {
    "list": "list",
    "watch": "watch",
    "fetch": "get",
    "create": "create",
    "update": "patch",
    "delete": "delete",
}

Grant = tuple[str, str, str]  # api group, resource, verb


def grants_of(role: dict[str, Any]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def role_grants() -> set[Grant]:
    docs = yaml.safe_load_all((ROOT / "ops" / "k8s" / "base" / "rbac.yaml").read_text())
    (role,) = [d for d in docs if d and d["kind"] == "Role"]
    return grants_of(role)


def driver_grants() -> set[Grant]:
    (role,) = [
        o for o in objects.driver_rbac(CLUSTER_SPEC, KubernetesSettings()) if o["kind"] == "Role"
    ]
    return grants_of(role)


async def exercise(kube: Kube) -> set[Grant]:
    """Everything the runtime does, as the (group, resource, verb) it asked for."""
    rt = kube.runtime(warm_pool_size=1)

    def start(nid: str, sid: str, mode: str = "standalone") -> SessionSpec:
        return SessionSpec(nid, sid, "tok", WorkloadSpec(mode=mode), f"/notebooks/{nid}")

    async def ready(nid: str) -> bool:
        return (await rt.observe(nid)).marimo.phase is Phase.READY  # reads the token

    await rt.ensure_running(start("NB1", "S1"))  # fills the pool
    await rt.ensure_running(start("NB2", "S1"))  # claims from it
    await rt.ensure_running(start("NB3", "S1", mode="cluster"))  # driver RBAC
    await eventually(lambda: ready("NB1"))
    await rt.read_logs("NB1", Observation(session_id="S1"), 1000)  # pods/log
    await rt.ensure_running(start("NB1", "S2"))  # replaces the old session
    for nid in ("NB1", "NB2", "NB3"):
        await rt.ensure_stopped(nid)
        await rt.delete(nid)
    task = asyncio.create_task(rt.run_watch(lambda _nid: asyncio.sleep(0)))

    async def watching() -> bool:
        return kube.emulator.open_watches > 0

    await eventually(watching)
    rt.watcher.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {(c.group, c.plural, VERBS[c.action]) for c in kube.emulator.calls}


async def test_the_worker_role_grants_what_the_runtime_calls_and_nothing_more(
    kube: Kube,
) -> None:
    called = await exercise(kube)
    grants = role_grants()
    assert called - grants == set(), "the runtime calls what the Role does not grant"
    assert driver_grants() <= grants, "the worker cannot grant a driver what it lacks"
    assert grants - called - driver_grants() == set(), "granted but never called"
