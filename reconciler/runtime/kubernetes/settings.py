"""Settings of the Kubernetes runtime: where and how notebook pods run.

Read from the environment once per worker process (`NOTEBOOKS_K8S_*`); tests
build the dataclass directly."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field


class KubernetesSettingsError(ValueError):
    pass


def _labels(raw: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise KubernetesSettingsError(f"expected key=value pairs, got {part!r}")
        out[key] = value
    return out


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
        env = dict(os.environ if environ is None else environ)
        d = cls()

        def get(name: str, default: str) -> str:
            return env.get(f"NOTEBOOKS_K8S_{name}", "") or default

        try:
            return cls(
                namespace=get("NAMESPACE", d.namespace),
                sail_image=get("SAIL_IMAGE", d.sail_image),
                marimo_image=get("MARIMO_IMAGE", d.marimo_image),
                image_pull_policy=get("IMAGE_PULL_POLICY", d.image_pull_policy),
                proxy_pod_labels=_labels(get("PROXY_POD_LABELS", "")) or dict(d.proxy_pod_labels),
                proxy_namespace=get("PROXY_NAMESPACE", "") or None,
                worker_pod_labels=_labels(get("WORKER_POD_LABELS", ""))
                or dict(d.worker_pod_labels),
                worker_namespace=get("WORKER_NAMESPACE", "") or None,
                storage_class=get("STORAGE_CLASS", "") or None,
                storage_size=get("STORAGE_SIZE", d.storage_size),
                default_cpu=get("DEFAULT_CPU", d.default_cpu),
                default_memory=get("DEFAULT_MEMORY", d.default_memory),
                run_as_user=int(get("RUN_AS_USER", str(d.run_as_user))),
                image_pull_secrets=tuple(filter(None, get("IMAGE_PULL_SECRETS", "").split(","))),
                watch_timeout_seconds=int(
                    get("WATCH_TIMEOUT_SECONDS", str(d.watch_timeout_seconds))
                ),
                resync_seconds=int(get("RESYNC_SECONDS", str(d.resync_seconds))),
                request_timeout_seconds=float(
                    get("REQUEST_TIMEOUT_SECONDS", str(d.request_timeout_seconds))
                ),
                extra_pod_labels=json.loads(get("EXTRA_POD_LABELS", "{}")),
                warm_pool_size=int(get("WARM_POOL_SIZE", "0")),
                session_egress_allow=_cidrs(
                    "SESSION_EGRESS_ALLOW", get("SESSION_EGRESS_ALLOW", "")
                ),
                api_server_cidrs=_cidrs("API_SERVER_CIDRS", get("API_SERVER_CIDRS", "")),
            )
        except ValueError as exc:
            raise KubernetesSettingsError(str(exc)) from None
