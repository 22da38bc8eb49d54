"""Names and labels of a notebook's Kubernetes objects, in one place.

Ids match ^[A-Z0-9]{1,20}$, so lower-cased they are valid DNS-1035 labels
after the `nb-` prefix. Pods and the token Secret carry the session id in
their names, so a new session never collides with a pod of the previous one
still terminating; Services, the PVC, the NetworkPolicies and RBAC are per
notebook and survive sessions."""

from __future__ import annotations

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "notebooks"
NOTEBOOK = "notebooks.example.com/notebook-id"
SESSION = "notebooks.example.com/session-id"
COMPONENT = "app.kubernetes.io/component"

SAIL = "sail"
MARIMO = "marimo"
# What Sail itself puts on the worker pods a cluster-mode driver creates: it
# copies our template's labels, then sets its own over them, this one
# included (sail-execution worker_manager/kubernetes.rs, `build_pod_labels`).
SAIL_WORKER = "worker"

SAIL_PORT = 50051
MARIMO_PORT = 2718

TOKEN_KEY = "token"
DATA_DIR = "/data"
TOKEN_DIR = "/var/run/secrets/notebooks"
# A notebook created from a file: that file, in a Secret of the session's
# own (the token's, which the reconciler reads on each pass, stays small),
# mounted for the seeding init container only.
SEED_KEY = "seed.py"
SEED_DIR = "/var/run/notebooks-seed"


def _base(notebook_id: str) -> str:
    return f"nb-{notebook_id.lower()}"


def _session(notebook_id: str, session_id: str) -> str:
    return f"{_base(notebook_id)}-{session_id.lower()}"


def pod_name(notebook_id: str, session_id: str, component: str) -> str:
    return f"{_session(notebook_id, session_id)}-{component}"


def worker_pod_prefix(notebook_id: str, session_id: str) -> str:
    return f"{_session(notebook_id, session_id)}-worker-"


def token_secret_name(notebook_id: str, session_id: str) -> str:
    return f"{_session(notebook_id, session_id)}-token"


def seed_secret_name(notebook_id: str, session_id: str) -> str:
    return f"{_session(notebook_id, session_id)}-seed"


def env_secret_name(notebook_id: str, session_id: str) -> str:
    """A session's secret environment (its workload config's `secretEnv`)."""
    return f"{_session(notebook_id, session_id)}-env"


def service_name(notebook_id: str, component: str) -> str:
    return f"{_base(notebook_id)}-{component}"


def pvc_name(notebook_id: str) -> str:
    return f"{_base(notebook_id)}-data"


def policy_name(notebook_id: str, component: str) -> str:
    return f"{_base(notebook_id)}-{component}"


def rbac_name(notebook_id: str) -> str:
    """ServiceAccount, Role and RoleBinding of a cluster-mode Sail driver."""
    return f"{_base(notebook_id)}-sail-driver"


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def managed() -> dict[str, str]:
    return {MANAGED_BY: MANAGER}


def notebook_labels(notebook_id: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, NOTEBOOK: notebook_id}


def session_labels(notebook_id: str, session_id: str, component: str) -> dict[str, str]:
    return {
        MANAGED_BY: MANAGER,
        NOTEBOOK: notebook_id,
        SESSION: session_id,
        COMPONENT: component,
    }


def service_host(notebook_id: str, component: str, namespace: str) -> str:
    return f"{service_name(notebook_id, component)}.{namespace}.svc"


def marimo_url(notebook_id: str, namespace: str) -> str:
    return f"http://{service_host(notebook_id, MARIMO, namespace)}:{MARIMO_PORT}"


def sail_url(notebook_id: str, namespace: str) -> str:
    return f"sc://{service_host(notebook_id, SAIL, namespace)}:{SAIL_PORT}"
