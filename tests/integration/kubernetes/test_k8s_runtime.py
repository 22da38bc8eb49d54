"""The Kubernetes runtime against the API emulator, through the official
client, with a fake kubelet moving pods as a node would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from kube_emulator import eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from common.settings import Settings
from common.statuses import Desired, Status
from reconciler.plan import Action, NotebookState, plan
from reconciler.runtime.base import Phase, ResourceSpec, SessionSpec, TerminalError, WorkloadSpec
from reconciler.runtime.factory import make_runtime
from reconciler.runtime.kubernetes import KubernetesRuntime
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.api import STUCK_TERMINATING_SECONDS
from reconciler.runtime.kubernetes.runtime import SUPPORTS_CHECK_SECONDS


def spec(
    nid: str = "NB1",
    sid: str = "S1",
    *,
    sail_image: str = "",
    marimo_image: str = "",
    mode: str = "standalone",
) -> SessionSpec:
    return SessionSpec(
        notebook_id=nid,
        session_id=sid,
        session_token="tok-" + sid,
        workload=WorkloadSpec(
            mode=mode,
            sail=ResourceSpec(image=sail_image),
            marimo=ResourceSpec(image=marimo_image),
        ),
        base_url=f"/notebooks/{nid}",
    )


async def test_start_reaches_ready_with_urls_and_all_objects(kube: Kube) -> None:
    rt = kube.runtime()
    kube.kubelet.default = kubelet.PENDING  # scheduled, containers being created
    first = await rt.ensure_running(spec())
    assert first.session_id == "S1"

    async def creating() -> bool:
        obs = await rt.observe("NB1")
        return obs.sail.detail == obs.marimo.detail == "ContainerCreating"

    await eventually(creating)
    obs = await rt.observe("NB1")
    assert obs.sail.phase is obs.marimo.phase is Phase.STARTING
    assert kube.kubelet.apply(NAMESPACE, "nb-nb1-s1-sail", kubelet.RUN)
    obs = await rt.observe("NB1")
    assert obs.sail.phase is Phase.READY and obs.marimo.phase is Phase.STARTING
    assert kube.kubelet.apply(NAMESPACE, "nb-nb1-s1-marimo", kubelet.RUN)
    obs = await rt.observe("NB1")
    assert obs.marimo_url == f"http://nb-nb1-marimo.{NAMESPACE}.svc:2718"
    assert obs.sail_url == f"sc://nb-nb1-sail.{NAMESPACE}.svc:50051"
    assert obs.runtime_state["marimo_url"] == obs.marimo_url
    emu = kube.emulator
    assert kube.pods() == ["nb-nb1-s1-marimo", "nb-nb1-s1-sail"]
    assert emu.names("services") == ["nb-nb1-marimo", "nb-nb1-sail"]
    assert emu.names("secrets") == ["nb-nb1-s1-token"]
    assert emu.names("persistentvolumeclaims") == ["nb-nb1-data"]
    assert emu.names("networkpolicies", "networking.k8s.io") == ["nb-nb1-marimo", "nb-nb1-sail"]
    # ensure_running again is a no-op that reports the same state
    again = await rt.ensure_running(spec())
    assert again.sail.phase is Phase.READY and kube.pods() == ["nb-nb1-s1-marimo", "nb-nb1-s1-sail"]


async def _failed(kube: Kube, s: SessionSpec, component: str) -> str:
    rt = kube.runtime()
    await rt.ensure_running(s)

    async def failed() -> bool:
        obs = await rt.observe(s.notebook_id)
        return getattr(obs, component).phase is Phase.FAILED

    await eventually(failed)
    c = getattr(await rt.observe(s.notebook_id), component)
    assert c.terminal, c
    return c.detail


async def test_image_pull_failure_is_terminal_with_reason(kube: Kube) -> None:
    kube.kubelet.behaviour["registry/missing:9"] = kubelet.IMAGE_PULL
    detail = await _failed(kube, spec(sail_image="registry/missing:9"), "sail")
    assert "ImagePullBackOff" in detail and "registry/missing:9" in detail


async def test_a_pull_the_registry_failed_is_waited_for(kube: Kube) -> None:
    kube.kubelet.behaviour["registry/flaky:9"] = kubelet.IMAGE_PULL_RETRY
    rt = kube.runtime()
    await rt.ensure_running(spec(sail_image="registry/flaky:9"))

    async def waiting() -> bool:
        return "503 Service Unavailable" in (await rt.observe("NB1")).sail.waiting_for

    await eventually(waiting)
    sail = (await rt.observe("NB1")).sail
    assert sail.phase is Phase.STARTING and not sail.terminal
    assert sail.waiting_for.startswith("its image: rpc error") and "ErrImagePull" in sail.detail


async def test_crash_loop_is_terminal_with_reason(kube: Kube) -> None:
    kube.kubelet.behaviour["kernel:broken"] = kubelet.CRASH_LOOP
    detail = await _failed(kube, spec(marimo_image="kernel:broken"), "marimo")
    assert "CrashLoopBackOff" in detail and "exit code 2" in detail


async def test_an_unschedulable_pod_waits_for_a_node_then_runs(kube: Kube) -> None:
    """Until a node fits (an autoscaler's new node), the pod waits and says
    so; once scheduled, it runs: no failure on the first look."""
    kube.kubelet.behaviour["sail:huge"] = kubelet.UNSCHEDULABLE
    rt = kube.runtime()
    s = spec(sail_image="sail:huge")
    await rt.ensure_running(s)

    async def waiting() -> bool:
        return (await rt.observe("NB1")).sail.waiting_for.startswith("a node: 0/3 nodes")

    await eventually(waiting)
    sail = (await rt.observe("NB1")).sail
    assert sail.phase is Phase.STARTING and not sail.terminal
    pod = kube.emulator.get("pods", NAMESPACE, "nb-nb1-s1-sail")
    assert pod is not None
    kube.kubelet.set_status(NAMESPACE, "nb-nb1-s1-sail", kubelet.running(pod))  # a node came

    async def ready() -> bool:
        return (await rt.observe("NB1")).sail.phase is Phase.READY

    await eventually(ready)


async def test_oom_kill_is_terminal_with_reason(kube: Kube) -> None:
    kube.kubelet.behaviour["sail:hungry"] = kubelet.OOM
    detail = await _failed(kube, spec(sail_image="sail:hungry"), "sail")
    assert "OOMKilled" in detail


async def both_ready(rt: KubernetesRuntime) -> bool:
    obs = await rt.observe("NB1")
    return obs.sail.phase is Phase.READY and obs.marimo.phase is Phase.READY


@pytest.mark.parametrize("graceful", [False, True])
async def test_an_evicted_pod_is_replaced_by_the_repair(kube: Kube, graceful: bool) -> None:
    """An evicted pod (or one whose node shut down) stays as an object in
    phase Failed under the session's fixed name: the repair's create met a
    409 and the notebook failed. It is deleted, then created again. (An API
    server deletes an ended pod at once, grace or not: nothing to wait for.)"""
    kube.emulator.graceful_pods = graceful
    rt = kube.runtime()
    await rt.ensure_running(spec())

    await eventually(lambda: both_ready(rt))
    name = "nb-nb1-s1-marimo"
    before = kube.emulator.get("pods", NAMESPACE, name)
    assert before is not None
    evicted = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: memory.",
    }
    kube.kubelet.set_status(NAMESPACE, name, evicted)
    marimo = (await rt.observe("NB1")).marimo
    assert marimo.phase is Phase.FAILED and not marimo.terminal  # the plan repairs it
    await rt.ensure_running(spec())  # the repair
    await rt.ensure_running(spec())  # its next pass, once the ended pod is gone
    await eventually(lambda: both_ready(rt))
    after = kube.emulator.get("pods", NAMESPACE, name)
    assert after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]


async def test_a_pod_stuck_terminating_is_deleted_at_once(kube: Kube) -> None:
    """A pod on a lost node never gets its kubelet's confirmation: past its
    deletionTimestamp by STUCK_TERMINATING_SECONDS it is deleted with no
    grace, instead of holding a stop (or the next start) forever."""
    kube.emulator.graceful_pods = True
    rt = kube.runtime()
    await rt.ensure_running(spec())
    await rt.ensure_stopped("NB1")
    name = "nb-nb1-s1-marimo"
    pod = kube.emulator.get("pods", NAMESPACE, name)
    assert pod is not None and pod["metadata"].get("deletionTimestamp")
    await rt.ensure_stopped("NB1")  # within its grace: left to its kubelet
    assert kube.emulator.get("pods", NAMESPACE, name) is not None
    grace = pod["metadata"]["deletionGracePeriodSeconds"]  # the deletionTimestamp is past it
    kube.clock.advance(grace + STUCK_TERMINATING_SECONDS)
    await rt.ensure_stopped("NB1")  # late, not yet stuck
    assert kube.emulator.get("pods", NAMESPACE, name) is not None
    kube.clock.advance(1)
    await rt.ensure_stopped("NB1")
    assert kube.emulator.get("pods", NAMESPACE, name) is None  # graceful ones stay: forced


SHUTDOWN = {
    "phase": "Failed",
    "reason": "Shutdown",
    "message": "Pod was terminated in response to imminent node shutdown.",
}


@pytest.mark.parametrize("node", ["lost", "shut down"])
async def test_a_session_pod_stuck_terminating_is_replaced_by_the_start(
    kube: Kube, node: str
) -> None:
    """A running session's pod evicted from a lost node keeps its
    deletionTimestamp (phase Running, or Failed if the node shut down while
    it terminated): no kubelet confirms it. The repair's start leaves it to
    its kubelet within its grace, then, once it is stuck there, deletes it
    with no grace and creates it again (the name is the session's)."""
    kube.emulator.graceful_pods = True
    rt = kube.runtime()
    await rt.ensure_running(spec())
    await eventually(lambda: both_ready(rt))
    name = "nb-nb1-s1-marimo"
    before = kube.emulator.get("pods", NAMESPACE, name)
    assert before is not None
    assert await rt.api.delete("Pod", name)  # the taint manager evicting it
    if node == "shut down":
        kube.kubelet.set_status(NAMESPACE, name, SHUTDOWN)
    obs = await rt.ensure_running(spec())  # the repair, within the pod's grace
    assert obs.marimo.terminating and obs.sail.phase is Phase.READY
    pod = kube.emulator.get("pods", NAMESPACE, name)
    assert pod is not None and pod["metadata"]["uid"] == before["metadata"]["uid"]
    grace = pod["metadata"]["deletionGracePeriodSeconds"]
    kube.clock.advance(grace + STUCK_TERMINATING_SECONDS + 1)
    await rt.ensure_running(spec())  # stuck: deleted with no grace, created again
    after = kube.emulator.get("pods", NAMESPACE, name)
    assert after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]
    await eventually(lambda: both_ready(rt))


async def test_a_repair_of_a_pod_stuck_terminating_ends_running(kube: Kube) -> None:
    """The plan and the runtime together, pass after pass as the reconciler
    runs them: a Marimo pod evicted from a lost node under a starting
    (repairing) notebook is replaced once stuck, within the deadline."""
    kube.emulator.graceful_pods = True
    rt = kube.runtime()
    await rt.ensure_running(spec())
    await eventually(lambda: both_ready(rt))
    assert await rt.api.delete("Pod", "nb-nb1-s1-marimo")  # its node is lost
    now = kube.clock.now()
    row = replace(
        stopping("NB1"),
        desired=Desired.RUNNING,
        status=Status.STARTING,
        status_message="restarting after Marimo: terminating",
        start_deadline_at=now + timedelta(seconds=300),
    )

    async def reconcile() -> Status:
        nonlocal row
        decided = plan(row, await rt.observe("NB1"), kube.clock.now())
        if Action.ENSURE_RUNNING in decided.actions:
            await rt.ensure_running(spec())
        row = replace(row, status=decided.status, status_message=decided.status_message)
        return decided.status

    assert await reconcile() is Status.STARTING  # left to its kubelet, within its grace
    kube.clock.advance(30 + STUCK_TERMINATING_SECONDS + 1)  # still within the deadline
    assert await reconcile() is Status.STARTING  # stuck: replaced

    async def running() -> bool:
        return await reconcile() is Status.RUNNING

    await eventually(running)


async def test_pod_deleted_under_running_notebook_is_absent_then_repaired(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec())

    await eventually(lambda: both_ready(rt))
    kube.emulator.remove("", "pods", NAMESPACE, "nb-nb1-s1-marimo")  # evicted, node lost…
    obs = await rt.observe("NB1")
    assert obs.marimo.phase is Phase.ABSENT and obs.sail.phase is Phase.READY
    await rt.ensure_running(spec())  # the repair: only the missing pod is created
    await eventually(lambda: both_ready(rt))


async def test_two_runtimes_racing_create_each_object_once(kube: Kube) -> None:
    a, b = kube.runtime(), kube.runtime()
    s = spec(mode="cluster")
    obs_a, obs_b = await asyncio.gather(a.ensure_running(s), b.ensure_running(s))
    assert obs_a.session_id == obs_b.session_id == "S1"
    creates = [c for c in kube.emulator.calls if c.action == "create"]
    conflicts = [e for e in kube.emulator.errors if getattr(e, "status", None) == 409]
    # both tried every object (11 in cluster mode); the loser took 409 as success
    assert len(creates) == 22 and len(conflicts) == 11
    assert kube.pods() == ["nb-nb1-s1-marimo", "nb-nb1-s1-sail"]
    assert kube.emulator.names("roles", "rbac.authorization.k8s.io") == ["nb-nb1-sail-driver"]
    assert kube.emulator.names("serviceaccounts") == ["nb-nb1-sail-driver"]


async def test_new_session_replaces_pods_and_token_of_the_old_one(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec(sid="S1"))
    obs = await rt.ensure_running(spec(sid="S2"))
    assert obs.session_id == "S2"
    assert kube.pods() == ["nb-nb1-s2-marimo", "nb-nb1-s2-sail"]
    assert kube.emulator.names("secrets") == ["nb-nb1-s2-token"]


async def test_a_notebook_from_a_file_gets_a_seed_secret_its_stop_removes(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(replace(spec(sid="S1"), seed="import marimo\n"))
    emu = kube.emulator
    assert emu.names("secrets") == ["nb-nb1-s1-seed", "nb-nb1-s1-token"]
    pod = emu.get("pods", NAMESPACE, "nb-nb1-s1-marimo")
    assert "nb-nb1-s1-seed" in json.dumps(pod["spec"]["volumes"])
    # A new session (the seed dropped once the notebook ran) has none.
    await rt.ensure_running(spec(sid="S2"))
    assert emu.names("secrets") == ["nb-nb1-s2-token"]
    await rt.ensure_stopped("NB1")
    assert emu.names("secrets") == []


async def test_stop_keeps_storage_and_delete_removes_it(kube: Kube) -> None:
    rt = kube.runtime()
    other = spec(nid="OTHER")
    await rt.ensure_running(other)
    await rt.ensure_running(spec(sid="S1", mode="cluster"))
    pvc_uid = kube.emulator.get("persistentvolumeclaims", NAMESPACE, "nb-nb1-data")["metadata"][
        "uid"
    ]
    await rt.ensure_stopped("NB1")
    obs = await rt.observe("NB1")
    assert obs.nothing_left and obs.session_id is None
    emu = kube.emulator
    assert kube.pods() == ["nb-other-s1-marimo", "nb-other-s1-sail"]  # the other notebook stays
    assert emu.names("persistentvolumeclaims") == ["nb-nb1-data", "nb-other-data"]
    assert "nb-nb1-sail" not in emu.names("services")
    assert emu.names("roles", "rbac.authorization.k8s.io") == []
    # a new start mounts the same claim: the notebook file survived the stop
    await rt.ensure_running(spec(sid="S2"))
    assert emu.get("persistentvolumeclaims", NAMESPACE, "nb-nb1-data")["metadata"]["uid"] == pvc_uid
    await rt.delete("NB1")
    await rt.delete("NB1")  # idempotent
    left = [k for k in emu.objects if (k[3].startswith("nb-nb1-"))]
    assert left == []
    assert emu.names("persistentvolumeclaims") == ["nb-other-data"]


async def test_terminating_pods_are_not_gone_until_the_kubelet_finishes(kube: Kube) -> None:
    kube.emulator.graceful_pods = True
    rt = kube.runtime()
    await rt.ensure_running(spec(sid="S1"))
    await rt.ensure_stopped("NB1")
    obs = await rt.observe("NB1")
    assert not obs.nothing_left
    assert obs.sail.detail == obs.marimo.detail == "terminating"
    assert obs.sail.terminating and obs.marimo.terminating  # the reconciler spaces its looks
    deletes = sum(c.action == "delete" for c in kube.emulator.calls)
    await rt.ensure_stopped("NB1")  # pods already terminating are not deleted again
    assert sum(c.action == "delete" for c in kube.emulator.calls) == deletes
    # a new session starts at once beside the old pods still terminating
    obs = await rt.ensure_running(spec(sid="S2"))
    assert obs.session_id == "S2"
    assert kube.pods() == [
        "nb-nb1-s1-marimo",
        "nb-nb1-s1-sail",
        "nb-nb1-s2-marimo",
        "nb-nb1-s2-sail",
    ]
    for pod in ("nb-nb1-s1-marimo", "nb-nb1-s1-sail"):
        assert kube.kubelet.finish(NAMESPACE, pod)
    await rt.ensure_stopped("NB1")
    for pod in ("nb-nb1-s2-marimo", "nb-nb1-s2-sail"):
        assert kube.kubelet.finish(NAMESPACE, pod)
    assert (await rt.observe("NB1")).nothing_left


def driver_worker_pod(kube: Kube, driver_name: str, suffix: str) -> dict[str, Any]:
    """A worker pod as a cluster-mode Sail driver creates it: its template's
    labels with Sail's own over them, named with the driver's prefix."""
    driver = kube.emulator.get("pods", NAMESPACE, driver_name)
    assert driver is not None
    env = {e["name"]: e.get("value") for e in driver["spec"]["containers"][0]["env"]}
    template = json.loads(str(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"]).replace("$$", "$"))
    labels = {**template["metadata"]["labels"], n.COMPONENT: "worker"}
    labels["app.kubernetes.io/name"] = "sail"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{env['SAIL_KUBERNETES__WORKER_POD_NAME_PREFIX']}{suffix}",
            "labels": labels,
        },
        "spec": template["spec"],
    }


def stopping(notebook_id: str) -> NotebookState:
    now = datetime.now(UTC)
    return NotebookState(
        id=notebook_id,
        desired=Desired.STOPPED,
        status=Status.STOPPING,
        status_message="",
        generation=2,
        session_id="S1",
        start_deadline_at=None,
        last_active_at=now,
        last_seen_at=now,
        executing=False,
        idle_timeout_seconds=3600,
        detached_timeout_seconds=0,
    )


async def test_a_stop_waits_for_and_deletes_the_drivers_worker_pods(kube: Kube) -> None:
    """A cluster-mode Sail driver creates worker pods itself; a stop is not
    done while any is left, including one a terminating driver created after
    the stop had deleted the rest."""
    kube.emulator.graceful_pods = True
    rt = kube.runtime()
    await rt.ensure_running(spec(mode="cluster"))
    first = driver_worker_pod(kube, "nb-nb1-s1-sail", "abc-1")
    assert await rt.api.create(first)  # what the driver does, through the API
    obs = await rt.observe("NB1")
    assert obs.session_id == "S1" and obs.sail.phase is Phase.READY  # workers do not count there
    await rt.ensure_stopped("NB1")
    worker = kube.emulator.get("pods", NAMESPACE, "nb-nb1-s1-worker-abc-1")
    assert worker is not None and worker["metadata"].get("deletionTimestamp")
    late = driver_worker_pod(kube, "nb-nb1-s1-sail", "abc-2")
    assert await rt.api.create(late)  # the terminating driver, after the stop
    for pod in ("nb-nb1-s1-sail", "nb-nb1-s1-marimo", "nb-nb1-s1-worker-abc-1"):
        assert kube.kubelet.finish(NAMESPACE, pod)
    obs = await rt.observe("NB1")
    assert not obs.nothing_left, "a worker pod is still there"
    assert obs.sail.terminating and "nb-nb1-s1-worker-abc-2" in obs.sail.detail
    decided = plan(stopping("NB1"), obs, datetime.now(UTC))
    assert decided.status is Status.STOPPING and decided.actions == (Action.ENSURE_STOPPED,)
    await rt.ensure_stopped("NB1")  # what that plan does: the late worker is deleted too
    late_pod = kube.emulator.get("pods", NAMESPACE, "nb-nb1-s1-worker-abc-2")
    assert late_pod is not None and late_pod["metadata"].get("deletionTimestamp")
    assert not (await rt.observe("NB1")).nothing_left  # still terminating
    assert kube.kubelet.finish(NAMESPACE, "nb-nb1-s1-worker-abc-2")
    obs = await rt.observe("NB1")
    assert obs.nothing_left
    assert plan(stopping("NB1"), obs, datetime.now(UTC)).status is Status.STOPPED


async def test_a_stop_revokes_the_drivers_rights_before_deleting_its_pods(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec(mode="cluster"))
    calls = len(kube.emulator.calls)
    await rt.ensure_stopped("NB1")
    deletes = [c.plural for c in kube.emulator.calls[calls:] if c.action == "delete"]
    assert deletes.index("pods") > max(
        deletes.index(p) for p in ("rolebindings", "roles", "serviceaccounts")
    )


async def test_worker_pods_never_choose_the_observed_session(kube: Kube) -> None:
    """A driver labels what it creates: a newer pod claiming another session
    must not make the reconciler take the notebook's session for an old one."""
    rt = kube.runtime()
    await rt.ensure_running(spec(mode="cluster"))
    stray = driver_worker_pod(kube, "nb-nb1-s1-sail", "zzz-1")
    stray["metadata"]["labels"][n.SESSION] = "OTHER"
    assert await rt.api.create(stray)
    obs = await rt.observe("NB1")
    assert obs.session_id == "S1"


async def test_observe_never_writes(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec())
    before = (kube.emulator.resource_version, len(kube.emulator.objects))
    kube.kubelet.default = kubelet.PENDING
    calls = len(kube.emulator.calls)
    await rt.observe("NB1")
    assert all(c.action in ("list", "watch", "fetch") for c in kube.emulator.calls[calls:])
    assert len(kube.emulator.objects) == before[1]


async def test_executing_is_read_from_marimo_with_the_session_token(kube: Kube) -> None:
    state = {"running": False}
    seen_tokens: list[str] = []

    async def sessions(request: web.Request) -> web.Response:
        seen_tokens.append(request.headers.get("Authorization", ""))
        if state.get("fail"):
            return web.json_response({"detail": "boom"}, status=500)
        return web.json_response(["client-1"])

    async def status(request: web.Request) -> web.Response:
        assert request.headers["Marimo-Session-Id"] == "client-1"
        return web.json_response({"state": "running" if state["running"] else "idle"})

    app = web.Application()
    app.router.add_get("/notebooks/NB1/api/sessions", sessions)
    app.router.add_get("/notebooks/NB1/api/kernel/status", status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        kube.marimo_root = str(server.make_url("/")).rstrip("/")
        rt = kube.runtime()
        await rt.ensure_running(spec())

        async def ready() -> bool:
            return (await rt.observe("NB1")).marimo.phase is Phase.READY

        await eventually(ready)
        assert (await rt.observe("NB1")).executing is False
        state["running"] = True
        assert (await rt.observe("NB1")).executing is True
        assert seen_tokens[-1] == "Bearer tok-S1"  # from the session's Secret
        # Marimo failing to answer is "unknown", never "idle": the idle timer
        # must not start (and auto-stop) a kernel that may be mid-job.
        state["fail"] = True
        assert (await rt.observe("NB1")).executing is None
    finally:
        await server.close()


def test_labels_select_one_notebook() -> None:
    assert n.selector(n.notebook_labels("A")) == (
        "app.kubernetes.io/managed-by=notebooks,notebooks.example.com/notebook-id=A"
    )


async def test_runtime_factory_builds_it_from_env_and_kubeconfig(
    kube: Kube, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": kube.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "u"}}],
                "current-context": "emu",
            }
        )
    )
    # The client reads KUBECONFIG once, at import: set where it keeps it.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setenv("NOTEBOOKS_K8S_NAMESPACE", "from-env")
    default = client.Configuration._default  # load_kube_config sets the global default
    try:
        rt = make_runtime(
            replace(settings, runtime="kubernetes", allowed_images=("ghcr.io/example/",))
        )
        assert isinstance(rt, KubernetesRuntime)
        assert rt.settings.allowed_images == ("ghcr.io/example/",)  # the common setting
        kube.runtimes.append(rt)
        obs = await rt.ensure_running(spec())
        assert obs.session_id == "S1"
        assert obs.marimo_url == "http://nb-nb1-marimo.from-env.svc:2718"
        assert kube.emulator.get("pods", "from-env", "nb-nb1-s1-sail") is not None
    finally:
        client.Configuration._default = default


QUOTA = (
    'pods "nb-nb1-s1-sail" is forbidden: exceeded quota: notebooks,'
    " requested: memory=1Gi, used: memory=8Gi, limited: memory=8Gi"
)
INVALID = 'Pod "nb-nb1-s1-sail" is invalid: spec.containers[0].image: Required value'


@pytest.mark.parametrize(
    ("refusal", "words"),
    [((403, "Forbidden", QUOTA), "exceeded quota"), ((422, "Invalid", INVALID), "is invalid")],
)
async def test_a_create_the_api_server_refuses_for_good_is_terminal_with_its_message(
    kube: Kube, refusal: tuple[int, str, str], words: str
) -> None:
    kube.emulator.admission = lambda plural, _: refusal if plural == "pods" else None
    with pytest.raises(TerminalError) as caught:
        await kube.runtime().ensure_running(spec())
    message = str(caught.value)
    assert words in message and f"({refusal[0]})" in message and "Pod nb-nb1-s1-" in message


@pytest.mark.parametrize("refusal", [(429, "TooManyRequests", "slow down"), (500, "Internal", "")])
async def test_throttling_and_server_errors_stay_transient(
    kube: Kube, refusal: tuple[int, str, str]
) -> None:
    kube.emulator.admission = lambda plural, _: refusal if plural == "pods" else None
    with pytest.raises(ApiException) as caught:
        await kube.runtime().ensure_running(spec())
    assert caught.value.status == refusal[0]  # retried with backoff by the worker


async def test_a_new_session_replaces_the_drivers_role_naming_its_own_pod(kube: Kube) -> None:
    """The driver may read only its own pod (the Role's resourceNames), so a
    session replacing another without a stop must not keep the old Role."""
    rt = kube.runtime()

    def readable() -> list[str]:
        role = kube.emulator.get(
            "roles", NAMESPACE, "nb-nb1-sail-driver", "rbac.authorization.k8s.io"
        )
        assert role is not None
        return [name for rule in role["rules"] for name in rule.get("resourceNames", [])]

    await rt.ensure_running(spec(sid="S1", mode="cluster"))
    assert readable() == ["nb-nb1-s1-sail"]
    await rt.ensure_running(spec(sid="S2", mode="cluster"))
    assert readable() == ["nb-nb1-s2-sail"]
    await rt.ensure_running(spec(sid="S2", mode="cluster"))  # the same session keeps it
    assert readable() == ["nb-nb1-s2-sail"]


async def test_an_image_the_operator_no_longer_allows_does_not_start(kube: Kube) -> None:
    """A config written before NOTEBOOKS_ALLOWED_IMAGES (or before it was
    narrowed) fails its start with the reason, and nothing is created."""
    rt = kube.runtime(allowed_images=("registry.example.com/notebooks/",))
    with pytest.raises(TerminalError, match="sail image other.example.com/sail:1 is not among"):
        await rt.ensure_running(spec(sail_image="other.example.com/sail:1"))
    assert kube.pods() == []
    # the runtime's own defaults are the operator's, and allowed ones start
    await rt.ensure_running(spec(marimo_image="registry.example.com/notebooks/kernel:2"))
    assert kube.pods() == ["nb-nb1-s1-marimo", "nb-nb1-s1-sail"]


async def test_a_token_the_worker_may_not_read_leaves_activity_unknown(kube: Kube) -> None:
    """Reading the session's token (to ask Marimo whether a cell runs) is
    refused (a Role without `get secrets`, a 5xx): the look still says what
    runs, with activity unknown, which never starts the idle timer. Before,
    the whole look failed, every pass, and idle and detached never came."""
    rt = kube.runtime()
    await rt.ensure_running(spec())
    for pod in ("nb-nb1-s1-sail", "nb-nb1-s1-marimo"):
        kube.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    original = rt.api.get

    async def refused(kind: str, name: str) -> Any:
        if kind == "Secret":
            raise ApiException(status=403, reason="Forbidden")
        return await original(kind, name)

    rt.api.get = refused  # type: ignore[method-assign]
    obs = await rt.observe("NB1")
    assert obs.sail.phase is obs.marimo.phase is Phase.READY
    assert obs.executing is None


async def test_pods_whose_objects_were_deleted_are_not_nothing_left(kube: Kube) -> None:
    """Taken for absent so that a start or repair makes them again, a
    session's components whose Services and token were deleted still run:
    for a stop or a failure's clean-up that is not "nothing left", or their
    pods would run on, out of sight."""
    rt = kube.runtime()
    await rt.ensure_running(spec())
    for pod in ("nb-nb1-s1-sail", "nb-nb1-s1-marimo"):
        kube.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    for name in ("nb-nb1-sail", "nb-nb1-marimo"):
        kube.emulator.remove("", "services", NAMESPACE, name)
    assert (await rt.observe("NB1")).marimo.phase is Phase.READY  # looked for a minute ago
    kube.clock.advance(SUPPORTS_CHECK_SECONDS)
    obs = await rt.observe("NB1")
    assert obs.sail.phase is obs.marimo.phase is Phase.ABSENT
    assert "its Service nb-nb1-marimo" in obs.marimo.detail
    assert not obs.nothing_left


async def test_a_secret_environment_deleted_by_hand_is_made_again(kube: Kube) -> None:
    """Its pods run on without it, but a container that restarts (or a new
    cluster-mode worker) cannot start: the Secret is looked for with the
    session's other objects, and a start makes it again."""
    rt = kube.runtime()
    base = spec()
    secret = replace(base, workload=replace(base.workload, secret_env={"DB_PASSWORD": "p4ss"}))
    await rt.ensure_running(secret)
    assert "nb-nb1-s1-env" in kube.emulator.names("secrets")
    for pod in ("nb-nb1-s1-sail", "nb-nb1-s1-marimo"):
        kube.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    kube.emulator.remove("", "secrets", NAMESPACE, "nb-nb1-s1-env")
    kube.clock.advance(SUPPORTS_CHECK_SECONDS)
    obs = await rt.observe("NB1")
    assert obs.sail.phase is obs.marimo.phase is Phase.ABSENT
    assert "its Secret nb-nb1-s1-env deleted" in obs.marimo.detail
    await rt.ensure_running(secret)
    assert "nb-nb1-s1-env" in kube.emulator.names("secrets")
    # A session without one is not asked for it.
    await rt.ensure_running(spec(sid="S2"))
    for pod in ("nb-nb1-s2-sail", "nb-nb1-s2-marimo"):
        kube.kubelet.apply(NAMESPACE, pod, kubelet.RUN)
    kube.clock.advance(SUPPORTS_CHECK_SECONDS)
    assert (await rt.observe("NB1")).marimo.phase is Phase.READY
