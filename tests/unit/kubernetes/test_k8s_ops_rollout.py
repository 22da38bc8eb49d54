"""ops/k8s against the code it runs: metrics on their own ports and off the
Services, rollouts that drain before the kill, and a database connection
budget that fits PostgreSQL's default max_connections."""

from __future__ import annotations

import math
from typing import Any

from test_k8s_ops_manifests import base_documents

import api.app
import proxy.serve
from common.settings import Settings

# What the budget leaves of PostgreSQL's default max_connections (100) for
# superuser-reserved slots (3), psql and `notebooks admin`.
CONNECTION_BUDGET = 90
# Connections a pod holds beside its pool: the proxy's LISTEN connection
# (proxy/access.py `listen`), the worker's pgqueuer connection (asyncpg, in
# reconciler/worker.py). The api holds none.
EXTRA_CONNECTIONS = {"notebooks-api": 0, "notebooks-proxy": 1, "notebooks-worker": 1}
# A Deployment's maxSurge when its strategy names none.
DEFAULT_SURGE = "25%"


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in base_documents() if d["kind"] == kind}


def _config() -> dict[str, str]:
    return _by_kind("ConfigMap")["notebooks-config"]["data"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment: the ConfigMap, then its own `env` (which wins)."""
    own = {e["name"]: e["value"] for e in _container(deployment).get("env", [])}
    return {**_config(), **own}


def test_metrics_listen_in_the_pod_on_their_own_port_and_no_service_exposes_them() -> None:
    deployments, services = _by_kind("Deployment"), _by_kind("Service")
    for name, prefix in (
        ("notebooks-api", "NOTEBOOKS_API"),
        ("notebooks-proxy", "NOTEBOOKS_PROXY"),
        ("notebooks-worker", "NOTEBOOKS_WORKER"),
    ):
        deployment = deployments[name]
        env = _env(deployment)
        port = int(env[f"{prefix}_METRICS_PORT"])
        assert env[f"{prefix}_METRICS_HOST"] == "0.0.0.0", name  # Prometheus scrapes the pod
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == port, name
        ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
        assert ports["metrics"] == port, name
        if f"{prefix}_PORT" in env:
            assert int(env[f"{prefix}_PORT"]) != port, name
        service = services.get(name)
        if service is not None:
            targets = {p["targetPort"] for p in service["spec"]["ports"]}
            assert not targets & {"metrics", port}, f"{name}'s Service exposes its metrics"
    # off the public port by default too, and on loopback
    defaults = Settings(database_url="x")
    assert defaults.api_metrics_host == defaults.proxy_metrics_host == "127.0.0.1"


def test_grace_period_covers_the_prestop_sleep_and_the_servers_own_drain() -> None:
    """SIGTERM comes after the preStop sleep; the server then drains for up to
    its own bound; the kubelet's SIGKILL must come later still."""
    deployments = _by_kind("Deployment")
    for name, drain in (
        ("notebooks-api", api.app.SHUTDOWN_SECONDS_AT_MOST),
        ("notebooks-proxy", proxy.serve.SHUTDOWN_SECONDS_AT_MOST),
    ):
        pod = deployments[name]["spec"]["template"]["spec"]
        sleep = _container(deployments[name])["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep >= 5, name  # endpoints and ingress need a few seconds to let go
        grace = pod.get("terminationGracePeriodSeconds", 30)
        assert grace > sleep + drain, (name, grace, sleep, drain)


def _surge(deployment: dict[str, Any], replicas: int) -> int:
    strategy = deployment["spec"].get("strategy", {})
    surge = strategy.get("rollingUpdate", {}).get("maxSurge", DEFAULT_SURGE)
    if isinstance(surge, str):
        return math.ceil(replicas * int(surge.rstrip("%")) / 100)
    return int(surge)


def connection_budget() -> dict[str, int]:
    """Connections each part may hold at once: every Deployment at its
    autoscaler's maximum plus its rollout surge, each pod its pool plus its
    own connections (an init container's `migrate` connection is closed
    before the pod's process starts), and the release Job's one."""
    deployments, autoscalers = _by_kind("Deployment"), _by_kind("HorizontalPodAutoscaler")
    default_pool = Settings(database_url="x").db_pool_max
    out = {}
    for name, extra in EXTRA_CONNECTIONS.items():
        deployment = deployments[name]
        replicas = autoscalers[name]["spec"]["maxReplicas"]
        pool = int(_env(deployment).get("NOTEBOOKS_DB_POOL_MAX", default_pool))
        out[name] = (replicas + _surge(deployment, replicas)) * (pool + extra)
    job = _by_kind("Job")["notebooks-release"]
    out["notebooks-release"] = job["spec"].get("parallelism", 1)  # `migrate`: one connection
    return out


def test_database_connections_fit_postgresqls_default_max_connections() -> None:
    budget = connection_budget()
    assert set(budget) == {d for d in _by_kind("Deployment")} | {"notebooks-release"}
    assert sum(budget.values()) <= CONNECTION_BUDGET, budget
