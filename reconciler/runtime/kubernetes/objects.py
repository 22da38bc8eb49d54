"""Pure builders of a notebook's Kubernetes objects, from one `SessionSpec`
and the runtime's `KubernetesSettings`. Plain JSON-shaped dicts: what the API
server receives, what tests assert on, what the schema validator checks.
No I/O here but reading the seeding program's source once, at import."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from common.platform_env import user_env
from reconciler.runtime import seeding
from reconciler.runtime.base import ResourceSpec, SessionSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes.settings import KubernetesSettings
from reconciler.runtime.template import NOTEBOOK_FILE, TEMPLATE  # the same as locally

Obj = dict[str, Any]


# Seeds the PVC (reconciler/runtime/seeding.py, whose source is the init
# container's program: the same logic as the local runtime's).
_SEED = Path(seeding.__file__).read_text(encoding="utf-8")


# Where Marimo opens the notebook in its pod (also the proxy's pin for a
# viewer's X-Notebook-Id, through runtime_state).
NOTEBOOK_PATH = f"{n.DATA_DIR}/{NOTEBOOK_FILE}"


def _meta(name: str, labels: dict[str, str], ks: KubernetesSettings) -> Obj:
    return {"name": name, "namespace": ks.namespace, "labels": dict(labels)}


def _resources(res: ResourceSpec, ks: KubernetesSettings) -> Obj:
    cpu = res.cpu or ks.default_cpu
    memory = res.memory or ks.default_memory
    # No CPU limit (throttling hurts Spark more than it saves); memory is capped.
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def literal(value: str) -> str:
    """An env value as the kubelet must pass it on unchanged: it expands
    `$(NAME)` to an earlier variable and turns `$$` into `$`, so every `$`
    is doubled (`pa$$word` reaches the process as `pa$$word`)."""
    return value.replace("$", "$$")


def _env(user: dict[str, str], ours: dict[str, str]) -> list[Obj]:
    # Ours win: SPARK_REMOTE, SAIL_MODE, SAIL_CLUSTER__*… are not the user's to change.
    merged = {**user_env(user), **ours}
    return [{"name": k, "value": literal(v)} for k, v in sorted(merged.items())]


def _container_security(ks: KubernetesSettings) -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": ks.run_as_user,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# The kubelet's default of 1 s marks a busy process not Ready at once.
PROBE_TIMEOUT_SECONDS = 5


def _pod_spec(ks: KubernetesSettings, spec: SessionSpec, service_account: str | None) -> Obj:
    pod: Obj = {
        "restartPolicy": "Always",
        "enableServiceLinks": False,
        "automountServiceAccountToken": service_account is not None,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": ks.run_as_user,
            "runAsGroup": ks.run_as_user,
            "fsGroup": ks.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 10,
    }
    if service_account is not None:
        pod["serviceAccountName"] = service_account
    if spec.workload.node_selector:
        pod["nodeSelector"] = dict(spec.workload.node_selector)
    if ks.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in ks.image_pull_secrets]
    return pod


def _tmp_volume(ks: KubernetesSettings) -> tuple[Obj, Obj]:
    # The root filesystem is read-only; scratch space (HOME, spills) lives here,
    # capped so that one notebook cannot fill its node's disk.
    volume = {"name": "tmp", "emptyDir": {"sizeLimit": ks.scratch_size}}
    return volume, {"name": "tmp", "mountPath": "/tmp"}


def cluster_mode(spec: SessionSpec) -> bool:
    return spec.workload.mode == "cluster"


def _session_secret(
    spec: SessionSpec, ks: KubernetesSettings, what: str, name: str, data: dict[str, str]
) -> Obj:
    """Values of a session's own, as an immutable Secret labelled `what`."""
    nid, sid = spec.notebook_id, spec.session_id
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, n.session_labels(nid, sid, what), ks),
        "type": "Opaque",
        "immutable": True,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def token_secret(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    name = n.token_secret_name(spec.notebook_id, spec.session_id)
    return _session_secret(spec, ks, "token", name, {n.TOKEN_KEY: spec.session_token})


def seed_secret(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    """The file a notebook was created from, for its first start's seeding."""
    assert spec.seed is not None
    name = n.seed_secret_name(spec.notebook_id, spec.session_id)
    return _session_secret(spec, ks, "seed", name, {n.SEED_KEY: spec.seed})


def secret_env(spec: SessionSpec) -> dict[str, str]:
    """The workload's secret environment, without the platform's keys."""
    return user_env(spec.workload.secret_env)


def env_secret(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    """The secret environment, one key per variable: the containers take it
    with `envFrom`, so no value is in a pod's spec (readable by whoever may
    list pods) and `$(NAME)` in one is not expanded."""
    name = n.env_secret_name(spec.notebook_id, spec.session_id)
    return _session_secret(spec, ks, "env", name, secret_env(spec))


def _env_from(spec: SessionSpec) -> Obj:
    """A container's `envFrom` for the secret environment (none without one);
    its own `env` wins over it, so the platform's keys stay the platform's."""
    if not secret_env(spec):
        return {}
    name = n.env_secret_name(spec.notebook_id, spec.session_id)
    return {"envFrom": [{"secretRef": {"name": name}}]}


def pvc(notebook_id: str, ks: KubernetesSettings) -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": ks.storage_size}},
    }
    if ks.storage_class:
        spec["storageClassName"] = ks.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(n.pvc_name(notebook_id), n.notebook_labels(notebook_id), ks),
        "spec": spec,
    }


def _worker_template(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    """PodTemplateSpec Sail uses for its worker pods: our labels (so the
    NetworkPolicy and teardown find them), same resources and hardening.
    Sail adds its own labels over these (`app.kubernetes.io/component` is
    `worker`, the value of `n.SAIL_WORKER`), its container's command and
    env, and `serviceAccountName: default`. The env values here pass two
    kubelets (the driver's, as part of this JSON, then the worker's):
    `_env` escapes them for the worker's, and again for the driver's as
    part of the driver's own env."""
    tmp_vol, tmp_mount = _tmp_volume(ks)
    labels = {
        **ks.extra_pod_labels,
        **n.session_labels(spec.notebook_id, spec.session_id, n.SAIL_WORKER),
    }
    pod = _pod_spec(ks, spec, None)
    pod["restartPolicy"] = "Never"
    pod["containers"] = [
        {
            "name": "worker",
            "image": spec.workload.sail.image or ks.sail_image,
            "resources": _resources(spec.workload.sail, ks),
            "securityContext": _container_security(ks),
            "env": _env(spec.workload.env, {"HOME": "/tmp"}),
            **_env_from(spec),
            "volumeMounts": [tmp_mount],
        }
    ]
    pod["volumes"] = [tmp_vol]
    return {"metadata": {"labels": labels}, "spec": pod}


def sail_pod(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    nid, sid = spec.notebook_id, spec.session_id
    name = n.pod_name(nid, sid, n.SAIL)
    image = spec.workload.sail.image or ks.sail_image
    ours = {"HOME": "/tmp"}
    env_refs: list[Obj] = []
    service_account = None
    if cluster_mode(spec):
        service_account = n.rbac_name(nid)
        ours |= {
            "SAIL_MODE": "kubernetes-cluster",
            "SAIL_KUBERNETES__IMAGE": image,
            "SAIL_KUBERNETES__IMAGE_PULL_POLICY": ks.image_pull_policy,
            "SAIL_KUBERNETES__NAMESPACE": ks.namespace,
            "SAIL_KUBERNETES__DRIVER_POD_NAME": name,
            "SAIL_KUBERNETES__WORKER_POD_NAME_PREFIX": n.worker_pod_prefix(nid, sid),
            "SAIL_KUBERNETES__WORKER_SERVICE_ACCOUNT_NAME": "default",
            "SAIL_KUBERNETES__WORKER_POD_TEMPLATE": json.dumps(
                _worker_template(spec, ks), sort_keys=True
            ),
            # `workers` is a cap, not only a start: Sail's default maximum
            # (0) is unlimited, and a wide query would ask for a pod per task.
            "SAIL_CLUSTER__WORKER_INITIAL_COUNT": str(max(spec.workload.workers, 1)),
            "SAIL_CLUSTER__WORKER_MAX_COUNT": str(max(spec.workload.workers, 1)),
            "SAIL_CLUSTER__DRIVER_LISTEN_HOST": "0.0.0.0",
            "SAIL_CLUSTER__WORKER_LISTEN_HOST": "0.0.0.0",
        }
        # Workers dial the driver back on its pod IP.
        env_refs.append(
            {
                "name": "SAIL_CLUSTER__DRIVER_EXTERNAL_HOST",
                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
            }
        )
    tmp_vol, tmp_mount = _tmp_volume(ks)
    pod = _pod_spec(ks, spec, service_account)
    pod["containers"] = [
        {
            "name": "sail",
            "image": image,
            "imagePullPolicy": ks.image_pull_policy,
            "command": ["sail", "spark", "server", "--ip", "0.0.0.0", "--port", str(n.SAIL_PORT)],
            "ports": [{"name": "spark-connect", "containerPort": n.SAIL_PORT}],
            "env": _env(spec.workload.env, ours) + env_refs,
            **_env_from(spec),
            "resources": _resources(spec.workload.sail, ks),
            "securityContext": _container_security(ks),
            # Sail implements grpc.health.v1, so the kubelet's gRPC probe works.
            "readinessProbe": {
                "grpc": {"port": n.SAIL_PORT},
                "periodSeconds": 2,
                "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                "failureThreshold": 3,
            },
            "volumeMounts": [tmp_mount],
        }
    ]
    pod["volumes"] = [tmp_vol]
    labels = {**ks.extra_pod_labels, **n.session_labels(nid, sid, n.SAIL)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, labels, ks), "spec": pod}


def _secret_volume(name: str, secret: str, key: str) -> Obj:
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": key, "path": key}],
        },
    }


def marimo_pod(spec: SessionSpec, ks: KubernetesSettings) -> Obj:
    nid, sid = spec.notebook_id, spec.session_id
    image = spec.workload.marimo.image or ks.marimo_image
    path = NOTEBOOK_PATH
    base_url = spec.base_url.rstrip("/")
    ours = {
        "HOME": "/tmp",
        "SPARK_REMOTE": n.sail_url(nid, ks.namespace),
        "MARIMO_SKIP_UPDATE_CHECK": "1",
    }
    tmp_vol, tmp_mount = _tmp_volume(ks)
    data_mount = {"name": "data", "mountPath": n.DATA_DIR}
    pod = _pod_spec(ks, spec, None)
    seed_args: list[str] = []
    seed_mounts: list[Obj] = []
    seed_volumes: list[Obj] = []
    if spec.seed is not None:
        seed_args = [f"{n.SEED_DIR}/{n.SEED_KEY}"]
        if spec.seed_replaces is not None:  # a restore: over the file there
            seed_args += [spec.seed_replaces, sid]
        seed_mounts = [{"name": "seed", "mountPath": n.SEED_DIR, "readOnly": True}]
        seed_volumes = [_secret_volume("seed", n.seed_secret_name(nid, sid), n.SEED_KEY)]
    pod["initContainers"] = [
        {
            "name": "seed",
            "image": image,
            "imagePullPolicy": ks.image_pull_policy,
            "command": ["python", "-c", _SEED, path, *seed_args],
            "env": [{"name": "NOTEBOOK_TEMPLATE", "value": literal(TEMPLATE)}],
            "resources": {
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"},
            },
            "securityContext": _container_security(ks),
            "volumeMounts": [data_mount, *seed_mounts],
        }
    ]
    pod["containers"] = [
        {
            "name": "marimo",
            "image": image,
            "imagePullPolicy": ks.image_pull_policy,
            # --quiet: no start-up banner, which would write the token into the pod's log.
            "command": [
                "marimo",
                "--quiet",
                "edit",
                path,
                "--headless",
                "--host",
                "0.0.0.0",
                "--port",
                str(n.MARIMO_PORT),
                "--base-url",
                base_url,
                "--token-password-file",
                f"{n.TOKEN_DIR}/{n.TOKEN_KEY}",
                "--skip-update-check",
            ],
            "ports": [{"name": "http", "containerPort": n.MARIMO_PORT}],
            "env": _env(spec.workload.env, ours),
            **_env_from(spec),
            "resources": _resources(spec.workload.marimo, ks),
            "securityContext": _container_security(ks),
            # /health answers without the token (measured).
            "readinessProbe": {
                "httpGet": {"path": f"{base_url}/health", "port": n.MARIMO_PORT},
                "periodSeconds": 2,
                "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                "failureThreshold": 3,
            },
            "volumeMounts": [
                tmp_mount,
                data_mount,
                {"name": "token", "mountPath": n.TOKEN_DIR, "readOnly": True},
            ],
        }
    ]
    pod["volumes"] = [
        tmp_vol,
        {"name": "data", "persistentVolumeClaim": {"claimName": n.pvc_name(nid)}},
        _secret_volume("token", n.token_secret_name(nid, sid), n.TOKEN_KEY),
        *seed_volumes,
    ]
    labels = {**ks.extra_pod_labels, **n.session_labels(nid, sid, n.MARIMO)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(n.pod_name(nid, sid, n.MARIMO), labels, ks),
        "spec": pod,
    }


def service(notebook_id: str, component: str, ks: KubernetesSettings) -> Obj:
    port = n.SAIL_PORT if component == n.SAIL else n.MARIMO_PORT
    spec: Obj = {
        "selector": {n.NOTEBOOK: notebook_id, n.COMPONENT: component},
        "ports": [{"name": "main", "port": port, "targetPort": port, "protocol": "TCP"}],
    }
    if component == n.MARIMO:
        spec["clusterIP"] = "None"  # headless: the proxy dials the pod itself
    # Reachable while not Ready: a Sail busy with a heavy job, or a Marimo
    # slow to answer, missing the kubelet's probes must not vanish from its
    # one client (the kernel's Spark session, the proxy's DNS lookup); the
    # reconciler judges health itself, with a grace (docs/reconciler.md).
    spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            n.service_name(notebook_id, component), n.notebook_labels(notebook_id), ks
        ),
        "spec": spec,
    }


def _peer(labels: dict[str, str]) -> Obj:
    return {"podSelector": {"matchLabels": dict(labels)}}


def _service_peer(labels: dict[str, str], namespace: str | None) -> Obj:
    peer = _peer(labels)
    if namespace:
        # A podSelector alone matches only this namespace's pods.
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return peer


def _allowed(ks: KubernetesSettings) -> list[Obj]:
    """Egress to the private destinations the operator allows (empty: none)."""
    if not ks.session_egress_allow:
        return []
    return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in ks.session_egress_allow]}]


def network_policies(notebook_id: str, ks: KubernetesSettings) -> list[Obj]:
    """Marimo only from the proxy pods (and the reconciler workers, which read
    its kernel status with the session token); Sail (driver and workers) only
    from this notebook's Marimo and its own Sail pods. Egress: the namespace's
    static policies (ops/k8s/base/network-policies.yaml) give every pod DNS
    and the public internet, and Marimo and Sail pods a path to Sail pods
    (which these ingress rules narrow to this notebook's); here, only the
    private CIDRs of `session_egress_allow`, so that a notebook started
    before egress was denied keeps its Sail across that upgrade."""
    sail_pods = {
        "matchExpressions": [
            {"key": n.NOTEBOOK, "operator": "In", "values": [notebook_id]},
            {"key": n.COMPONENT, "operator": "In", "values": [n.SAIL, n.SAIL_WORKER]},
        ]
    }
    marimo = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(n.policy_name(notebook_id, n.MARIMO), n.notebook_labels(notebook_id), ks),
        "spec": {
            "podSelector": {"matchLabels": {n.NOTEBOOK: notebook_id, n.COMPONENT: n.MARIMO}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        _service_peer(ks.proxy_pod_labels, ks.proxy_namespace),
                        _service_peer(ks.worker_pod_labels, ks.worker_namespace),
                    ],
                    "ports": [{"protocol": "TCP", "port": n.MARIMO_PORT}],
                }
            ],
            "egress": _allowed(ks),
        },
    }
    sail = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(n.policy_name(notebook_id, n.SAIL), n.notebook_labels(notebook_id), ks),
        "spec": {
            "podSelector": sail_pods,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        _peer({n.NOTEBOOK: notebook_id, n.COMPONENT: n.MARIMO}),
                        {"podSelector": sail_pods},
                    ]
                }
            ],
            "egress": _allowed(ks),
        },
    }
    return [marimo, sail]


def driver_egress(notebook_id: str, ks: KubernetesSettings) -> list[Obj]:
    """A cluster-mode Sail driver runs its workers through the Kubernetes API:
    egress to the API server's addresses (`api_server_cidrs`), which are
    private on most clusters. Nothing when they are not set."""
    if not ks.api_server_cidrs:
        return []
    name = n.policy_name(notebook_id, "sail-driver")
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(name, n.notebook_labels(notebook_id), ks),
            "spec": {
                "podSelector": {"matchLabels": {n.NOTEBOOK: notebook_id, n.COMPONENT: n.SAIL}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": cidr}} for cidr in ks.api_server_cidrs],
                        "ports": [
                            {"protocol": "TCP", "port": 443},
                            {"protocol": "TCP", "port": 6443},
                        ],
                    }
                ],
            },
        }
    ]


def driver_rbac(spec: SessionSpec, ks: KubernetesSettings) -> list[Obj]:
    """What a cluster-mode Sail driver calls, nothing more (Sail 0.7's
    KubernetesWorkerManager): create its worker pods, read its own pod (the
    workers' owner reference) and delete its workers by label when it stops.
    No list or watch, so it cannot read other notebooks' pods; what it may
    create and delete is confined by the admission policy in ops/. The Role
    names its session's pod, so it is replaced with each session (labelled)."""
    nid, sid = spec.notebook_id, spec.session_id
    name = n.rbac_name(nid)
    labels = n.notebook_labels(nid)
    pods = {"apiGroups": [""], "resources": ["pods"]}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, labels, ks),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(name, labels | {n.SESSION: sid}, ks),
            "rules": [
                {**pods, "verbs": ["create", "deletecollection"]},
                {**pods, "resourceNames": [n.pod_name(nid, sid, n.SAIL)], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, labels, ks),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ks.namespace}],
        },
    ]


def session_objects(spec: SessionSpec, ks: KubernetesSettings) -> list[Obj]:
    """Everything one session needs, in creation order (what a pod mounts or
    runs as exists before the pod)."""
    nid = spec.notebook_id
    objs: list[Obj] = [token_secret(spec, ks), pvc(nid, ks)]
    if spec.seed is not None:
        objs.append(seed_secret(spec, ks))
    if secret_env(spec):
        objs.append(env_secret(spec, ks))
    objs += network_policies(nid, ks)
    if cluster_mode(spec):
        objs += driver_rbac(spec, ks) + driver_egress(nid, ks)
    objs += [
        service(nid, n.SAIL, ks),
        service(nid, n.MARIMO, ks),
        sail_pod(spec, ks),
        marimo_pod(spec, ks),
    ]
    return objs
