"""The per-notebook NetworkPolicies with their egress rules, through the
official client and the API emulator: a start stores them as built, a stop
or a delete removes them (the other notebook's stay), and so does the delete
of a worker that never started the notebook (the orphan path: a reconcile
that finds no row deletes everything of that id). The emulator stores the
policies as the API server would; nothing here enforces them."""

from __future__ import annotations

from kube_emulator.cluster import NAMESPACE, Kube

from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import objects

GROUP = "networking.k8s.io"


def spec(nid: str, mode: str = "standalone") -> SessionSpec:
    return SessionSpec(nid, "S1", "tok", WorkloadSpec(mode=mode), f"/notebooks/{nid}")


def policies(kube: Kube) -> list[str]:
    return kube.emulator.names("networkpolicies", GROUP)


async def test_start_stores_the_egress_policies_and_stop_and_delete_remove_them(
    kube: Kube,
) -> None:
    settings = {"session_egress_allow": ("10.20.0.0/16",), "api_server_cidrs": ("10.0.0.2/32",)}
    rt = kube.runtime(**settings)
    await rt.ensure_running(spec("NB1", mode="cluster"))
    await rt.ensure_running(spec("OTHER"))
    assert policies(kube) == [
        "nb-nb1-marimo",
        "nb-nb1-sail",
        "nb-nb1-sail-driver",
        "nb-other-marimo",
        "nb-other-sail",
    ]
    built = [
        o
        for o in objects.session_objects(spec("NB1", "cluster"), rt.settings)
        if o["kind"] == "NetworkPolicy"
    ]
    for want in built:
        stored = kube.emulator.get("networkpolicies", NAMESPACE, want["metadata"]["name"], GROUP)
        assert stored is not None and stored["spec"] == want["spec"]
        assert "Egress" in stored["spec"]["policyTypes"]
    marimo = kube.emulator.get("networkpolicies", NAMESPACE, "nb-nb1-marimo", GROUP)
    assert marimo is not None
    assert {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]} in marimo["spec"]["egress"]

    await rt.ensure_stopped("NB1")
    assert policies(kube) == ["nb-other-marimo", "nb-other-sail"]
    await rt.ensure_running(spec("NB1"))  # standalone now: no driver policy
    assert policies(kube) == ["nb-nb1-marimo", "nb-nb1-sail", "nb-other-marimo", "nb-other-sail"]
    await rt.delete("NB1")
    assert policies(kube) == ["nb-other-marimo", "nb-other-sail"]

    # A worker with no memory of OTHER (another process, after a restart)
    # removes its policies too: what the reconcile of an orphan calls.
    await kube.runtime().delete("OTHER")
    assert policies(kube) == []


async def test_a_cluster_mode_start_without_the_api_server_cidrs_is_logged(kube: Kube) -> None:
    """Its driver could not reach a private API server: said in the log at
    each such start, not left for the member to find as a Spark hang."""
    from structlog.testing import capture_logs

    rt = kube.runtime()
    with capture_logs() as logs:
        await rt.ensure_running(spec("NB1", mode="cluster"))
        await rt.ensure_running(spec("NB2"))  # standalone: nothing to say
    warned = [e for e in logs if e["event"] == "k8s_cluster_mode_without_api_server_cidrs"]
    assert [e["notebook_id"] for e in warned] == ["NB1"]
    assert warned[0]["log_level"] == "warning"
    with capture_logs() as logs:
        await kube.runtime(api_server_cidrs=("10.0.0.2/32",)).ensure_running(
            spec("NB3", mode="cluster")
        )
    assert not [e for e in logs if e["event"] == "k8s_cluster_mode_without_api_server_cidrs"]
