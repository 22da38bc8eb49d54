"""Settings of the Kubernetes runtime: where and how notebook pods run.

Read from the environment once per worker process (`NOTEBOOKS_K8S_*`); tests
build the dataclass directly."""

from __future__ import annotations

import ipaddress
import json
import math
import os
from dataclasses import dataclass, field

from common.settings import SettingsError, int_setting

# What Kubernetes accepts as a container's imagePullPolicy (case-sensitive).
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


class KubernetesSettingsError(SettingsError):
    """A NOTEBOOKS_K8S_* value the worker refuses before it starts anything:
    a SettingsError, so `notebooks worker` says it in one line naming the
    variable (cli/main.py), not in a traceback."""


def _labels(name: str, raw: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise KubernetesSettingsError(
                f"NOTEBOOKS_K8S_{name} must be key=value pairs, got {part!r}"
            )
        out[key] = value
    return out


def _json_labels(name: str, raw: str) -> dict[str, str]:
    """A JSON object of string labels, e.g. `{"team": "data"}`."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise KubernetesSettingsError(
            f"NOTEBOOKS_K8S_{name} must be a JSON object of string labels, got {raw!r}"
        )
    return value


def _seconds(name: str, raw: str) -> float:
    """A duration in seconds, more than 0 (a zero timeout fails every call)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise KubernetesSettingsError(
            f"NOTEBOOKS_K8S_{name} must be a number of seconds above 0, got {raw!r}"
        )
    return value


def _pull_policy(raw: str) -> str:
    if raw not in PULL_POLICIES:
        raise KubernetesSettingsError(
            f"NOTEBOOKS_K8S_IMAGE_PULL_POLICY must be one of {', '.join(PULL_POLICIES)},"
            f" got {raw!r}"
        )
    return raw


def _cidrs(name: str, raw: str) -> tuple[str, ...]:
    """`10.1.0.0/16, 192.168.5.7` → ("10.1.0.0/16", "192.168.5.7/32"); a bad
    CIDR (or one with host bits set, which the API server may refuse) is an
    error naming the variable, so a worker does not start with it."""
    out = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            out.append(str(ipaddress.ip_network(part)))
        except ValueError as exc:
            raise KubernetesSettingsError(
                f"NOTEBOOKS_K8S_{name}: {part!r} is not a CIDR ({exc})"
            ) from None
    return tuple(out)


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str = "notebooks"
    sail_image: str = "ghcr.io/example/notebooks-kernel:latest"
    marimo_image: str = "ghcr.io/example/notebooks-kernel:latest"
    image_pull_policy: str = "IfNotPresent"
    # Pods of the session proxy: the only ones allowed to reach Marimo.
    proxy_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "notebooks-proxy"}
    )
    # Namespace of the proxy pods when it is not the notebooks' own namespace.
    proxy_namespace: str | None = None
    # Reconciler workers read Marimo's kernel status (for `detached`).
    worker_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "notebooks-worker"}
    )
    worker_namespace: str | None = None
    storage_class: str | None = None  # None: the cluster's default class
    storage_size: str = "1Gi"
    # Each pod's /tmp (HOME, Sail's spills): past this the kubelet evicts the
    # pod, so one notebook cannot fill its node's disk under other tenants.
    scratch_size: str = "10Gi"
    # Defaults when the workload config leaves cpu/memory empty.
    default_cpu: str = "500m"
    default_memory: str = "1Gi"
    # Pods run as this (non-root) user; the kernel image must allow it.
    run_as_user: int = 1000
    # Pods of one notebook may be pulled from a private registry.
    image_pull_secrets: tuple[str, ...] = ()
    # How long one watch request lasts before it is re-opened, and how often a
    # full relist re-announces every notebook (the watch's safety net).
    watch_timeout_seconds: int = 300
    resync_seconds: int = 600
    request_timeout_seconds: float = 30.0
    extra_pod_labels: dict[str, str] = field(default_factory=dict)
    # Warm start: pre-started Sail pods kept per workload shape (0 = off).
    warm_pool_size: int = 0
    # Private destinations (CIDRs) notebook pods may reach besides DNS and the
    # public internet (ops/k8s/base/network-policies.yaml): a data team's
    # database or warehouse.
    session_egress_allow: tuple[str, ...] = ()
    # The Kubernetes API server's addresses (CIDRs), which a cluster-mode Sail
    # driver must reach (TCP 443 and 6443) to run its worker pods.
    api_server_cidrs: tuple[str, ...] = ()
    # NOTEBOOKS_ALLOWED_IMAGES (common settings): checked again at each start,
    # for configs written before it was set (common/images.py).
    allowed_images: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KubernetesSettings:
        """Every malformed value is a KubernetesSettingsError naming its
        variable, never read as the default (docs/operations.md, "Settings")."""
        env = dict(os.environ if environ is None else environ)
        d = cls()

        def get(name: str, default: str) -> str:
            return env.get(f"NOTEBOOKS_K8S_{name}", "") or default

        def number(name: str, default: int, minimum: int) -> int:
            try:
                return int_setting(env, f"NOTEBOOKS_K8S_{name}", default, minimum=minimum)
            except SettingsError as exc:
                raise KubernetesSettingsError(str(exc)) from None

        return cls(
            namespace=get("NAMESPACE", d.namespace),
            sail_image=get("SAIL_IMAGE", d.sail_image),
            marimo_image=get("MARIMO_IMAGE", d.marimo_image),
            image_pull_policy=_pull_policy(get("IMAGE_PULL_POLICY", d.image_pull_policy)),
            proxy_pod_labels=_labels("PROXY_POD_LABELS", get("PROXY_POD_LABELS", ""))
            or dict(d.proxy_pod_labels),
            proxy_namespace=get("PROXY_NAMESPACE", "") or None,
            worker_pod_labels=_labels("WORKER_POD_LABELS", get("WORKER_POD_LABELS", ""))
            or dict(d.worker_pod_labels),
            worker_namespace=get("WORKER_NAMESPACE", "") or None,
            storage_class=get("STORAGE_CLASS", "") or None,
            storage_size=get("STORAGE_SIZE", d.storage_size),
            scratch_size=get("SCRATCH_SIZE", d.scratch_size),
            default_cpu=get("DEFAULT_CPU", d.default_cpu),
            default_memory=get("DEFAULT_MEMORY", d.default_memory),
            # Pods say runAsNonRoot: uid 0 would be refused at every start.
            run_as_user=number("RUN_AS_USER", d.run_as_user, minimum=1),
            image_pull_secrets=tuple(filter(None, get("IMAGE_PULL_SECRETS", "").split(","))),
            # A zero watch or resync period would spin against the API server.
            watch_timeout_seconds=number(
                "WATCH_TIMEOUT_SECONDS", d.watch_timeout_seconds, minimum=1
            ),
            resync_seconds=number("RESYNC_SECONDS", d.resync_seconds, minimum=1),
            request_timeout_seconds=_seconds(
                "REQUEST_TIMEOUT_SECONDS",
                get("REQUEST_TIMEOUT_SECONDS", str(d.request_timeout_seconds)),
            ),
            extra_pod_labels=_json_labels("EXTRA_POD_LABELS", get("EXTRA_POD_LABELS", "{}")),
            warm_pool_size=number("WARM_POOL_SIZE", d.warm_pool_size, minimum=0),
            session_egress_allow=_cidrs("SESSION_EGRESS_ALLOW", get("SESSION_EGRESS_ALLOW", "")),
            api_server_cidrs=_cidrs("API_SERVER_CIDRS", get("API_SERVER_CIDRS", "")),
        )
