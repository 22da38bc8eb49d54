"""The worker pod a cluster-mode Sail driver sends to the API server, built
the way Sail 0.7 builds it (lakehq/sail, crates/sail-execution/src/
worker_manager/kubernetes.rs, `launch_worker`), from the driver pod our
runtime creates: the settings come from the driver's environment as the
kubelet hands it over (so the worker template has been expanded once), the
template's spec is merged into Sail's own (lists of named items merged by
name, as k8s-openapi's DeepMerge does), its labels are copied and Sail's
own set over them. Then what the API server adds before validating
admission runs (defaulting and the DefaultTolerationSeconds plugin).

Sail itself cannot run here (no cluster), so this is a model, checked only
against what the code above does, not a recording."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubelet_expansion import process_env

Obj = dict[str, Any]

DRIVER_IP = "10.1.2.3"


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(extra, list)
        and all(isinstance(x, dict) and "name" in x for x in base + extra)
    ):
        out = [copy.deepcopy(x) for x in base]
        index = {x["name"]: i for i, x in enumerate(out)}
        for item in extra:
            if item["name"] in index:
                out[index[item["name"]]] = _merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(extra)


def driver_env(driver: Obj) -> dict[str, str]:
    """The Sail driver process's environment."""
    return process_env(driver["spec"]["containers"][0], {"status.podIP": DRIVER_IP})


def sail_worker_pod(driver: Obj, worker_id: int = 1, manager: str = "k3j5x9q2ab") -> Obj:
    env = driver_env(driver)
    template = json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])
    sail_env = [
        {"name": "RUST_LOG", "value": "info"},
        {"name": "SAIL_CLUSTER__ENABLE_TLS", "value": "false"},
        {"name": "SAIL_CLUSTER__DRIVER_EXTERNAL_HOST", "value": DRIVER_IP},
        {"name": "SAIL_CLUSTER__DRIVER_EXTERNAL_PORT", "value": "7011"},
        {"name": "SAIL_CLUSTER__WORKER_ID", "value": str(worker_id)},
        {"name": "SAIL_CLUSTER__WORKER_LISTEN_HOST", "value": "0.0.0.0"},
        {
            "name": "SAIL_CLUSTER__WORKER_EXTERNAL_HOST",
            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
        },
    ]
    spec = {
        "containers": [
            {
                "name": "worker",
                "command": ["sail"],
                "args": ["worker"],
                "env": sail_env,
                "image": env["SAIL_KUBERNETES__IMAGE"],
                "imagePullPolicy": env["SAIL_KUBERNETES__IMAGE_PULL_POLICY"],
            }
        ],
        "restartPolicy": "Never",
        "serviceAccountName": env["SAIL_KUBERNETES__WORKER_SERVICE_ACCOUNT_NAME"],
    }
    spec = _merge(spec, template.get("spec") or {})
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels |= {
        "app.kubernetes.io/name": "sail",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/instance": f"{manager}-{worker_id}",
        "sail.lakesail.com/worker-manager": manager,
    }
    # What the API server sets before validating admission: field defaults
    # and the DefaultTolerationSeconds plugin's tolerations.
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec["tolerations"] = [
        {
            "key": f"node.kubernetes.io/{taint}",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        }
        for taint in ("not-ready", "unreachable")
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{env['SAIL_KUBERNETES__WORKER_POD_NAME_PREFIX']}{manager}-{worker_id}",
            "namespace": env["SAIL_KUBERNETES__NAMESPACE"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": driver["metadata"]["name"],
                    "uid": "0b6c7a52-0000-4000-8000-000000000001",
                }
            ],
        },
        "spec": spec,
    }
