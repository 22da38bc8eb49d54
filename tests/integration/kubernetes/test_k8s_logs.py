"""A notebook's logs read on Kubernetes (docs/api.md "A notebook's logs"):
from its session's pods through the API server's `pods/log`, as the
official client asks for them, against the API emulator (a kmock server
speaking the real REST protocol; it runs no containers, so a test writes
what each container printed)."""

from __future__ import annotations

from kube_emulator import eventually, kubelet
from kube_emulator.cluster import NAMESPACE, Kube

from common import notebook_logs
from reconciler.runtime.base import Observation, Phase, ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes.runtime import LOG_LIMIT_FACTOR, LOG_TAIL_LINES


def spec(nid: str, sid: str, marimo_image: str = "") -> SessionSpec:
    workload = WorkloadSpec(marimo=ResourceSpec(image=marimo_image))
    return SessionSpec(nid, sid, "tok-" + sid, workload, f"/notebooks/{nid}")


async def test_a_running_sessions_pods_give_their_output(kube: Kube) -> None:
    rt = kube.runtime()
    await rt.ensure_running(spec("NB1", "S1"))
    await eventually(lambda: ready(rt, "NB1"))
    kube.emulator.pod_logs[(NAMESPACE, "nb-nb1-s1-sail", "sail", False)] = "sail line 1\n"
    kube.emulator.pod_logs[(NAMESPACE, "nb-nb1-s1-marimo", "marimo", False)] = "".join(
        f"marimo line {i:04}\n" for i in range(2000)
    )
    got = await rt.read_logs("NB1", Observation(session_id="S1"), 1000)
    assert got["sail"].data == b"sail line 1\n" and got["sail"].problem == ""
    # The newest lines, whatever the log's length: from 1000 lines back the
    # server's limit (counted from the first line it sends) would cut them
    # off, so the read is asked again from 100 lines back.
    marimo = got["marimo"].data
    assert marimo is not None and marimo.endswith(b"marimo line 1999\n")
    assert marimo.startswith(b"marimo line 1900\n")
    asked = [c.params for c in kube.emulator.calls if c.plural == "pods/log"]
    assert [(p["container"], p["tailLines"]) for p in asked] == [
        ("sail", str(LOG_TAIL_LINES[0])),
        ("marimo", str(LOG_TAIL_LINES[0])),
        ("marimo", str(LOG_TAIL_LINES[1])),
    ]
    assert {p["limitBytes"] for p in asked} == {str(LOG_LIMIT_FACTOR * 1000)}
    # Another session's pods are not this one's.
    other = await rt.read_logs("NB1", Observation(session_id="S0"), 1000)
    assert other["sail"].data is None and other["sail"].problem == "It has no pod."
    assert other["marimo"].data is None


async def test_a_crash_loop_gives_the_output_of_the_run_that_ended(kube: Kube) -> None:
    rt = kube.runtime()
    kube.kubelet.behaviour["kernel:broken"] = kubelet.CRASH_LOOP
    kube.kubelet.default = kubelet.PENDING
    await rt.ensure_running(spec("NB2", "S1", marimo_image="kernel:broken"))
    await eventually(lambda: crash_looping(kube, "nb-nb2-s1-marimo"))
    kube.emulator.pod_logs[(NAMESPACE, "nb-nb2-s1-marimo", "marimo", True)] = (
        "Traceback (most recent call last):\nModuleNotFoundError: No module named 'polars'\n"
    )
    got = await rt.read_logs("NB2", Observation(session_id="S1"), notebook_logs.MAX_BYTES)
    assert got["marimo"].data is not None and b"No module named 'polars'" in got["marimo"].data
    # Sail's pod is still being created: nothing to read, and the server says why.
    assert got["sail"].data is None
    assert got["sail"].problem == (
        'container "sail" in pod "nb-nb2-s1-sail" is waiting to start: ContainerCreating'
    )


async def ready(rt: object, nid: str) -> bool:
    return (await rt.observe(nid)).marimo.phase is Phase.READY  # type: ignore[attr-defined]


async def crash_looping(kube: Kube, pod: str) -> bool:
    found = kube.emulator.get("pods", NAMESPACE, pod) or {}
    statuses = (found.get("status") or {}).get("containerStatuses") or []
    return any((s.get("state") or {}).get("waiting") for s in statuses)
