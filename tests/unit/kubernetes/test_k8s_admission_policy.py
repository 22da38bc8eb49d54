"""ops/k8s/base/admission-policy.yaml: what a cluster-mode Sail driver's token
may write in the sessions namespace.

No API server runs here, so the policy's own CEL expressions are evaluated
by a Python CEL evaluator (cel-python, `celpy`, whose `matches` is RE2 like
Kubernetes') the way the API server applies a ValidatingAdmissionPolicy:
match constraints, the binding's namespace selector, match conditions (all
true, else the policy does not apply), variables in order, then every
validation must be true; an error denies (failurePolicy: Fail). What this
does not check: Kubernetes' type checking of the expressions against the
Pod schema and its cost estimate (cel-python is untyped), and how a real API
server orders and reports the failures."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes
from sail_worker import sail_worker_pod
from test_k8s_ops_manifests import base_documents

from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.pool import POOL
from reconciler.runtime.kubernetes.settings import KubernetesSettings

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "ops" / "k8s" / "base"
NS = "notebooks-sessions"
KS = KubernetesSettings(namespace=NS, sail_image="reg/kernel:1")

Obj = dict[str, Any]


def policy_documents() -> tuple[Obj, Obj]:
    docs = [d for d in yaml.safe_load_all((BASE / "admission-policy.yaml").read_text()) if d]
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


_ENV = celpy.Environment()


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    """The value, or the error (an exception instance) as CEL carries it."""
    program = _ENV.program(_ENV.compile(expression))
    try:
        return program.evaluate(activation)
    except celpy.CELEvalError as exc:
        return exc


@dataclass
class Verdict:
    applies: bool
    allowed: bool
    failures: list[str] = field(default_factory=list)


def admit(
    operation: str,
    username: str,
    obj: Obj | None = None,
    old: Obj | None = None,
    namespace: str = NS,
) -> Verdict:
    policy, binding = policy_documents()
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail" and binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    rules = spec["matchConstraints"]["resourceRules"]
    if not any(operation in r["operations"] and "pods" in r["resources"] for r in rules):
        return Verdict(False, True)
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
    if not selector.items() <= {"kubernetes.io/metadata.name": namespace}.items():
        return Verdict(False, True)
    pod = obj if obj is not None else old
    assert pod is not None
    request = {
        "operation": operation,
        "namespace": namespace,
        "name": pod["metadata"].get("name", ""),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "userInfo": {"username": username, "groups": ["system:serviceaccounts"]},
    }
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    for condition in spec["matchConditions"]:
        result = _evaluate(condition["expression"], activation)
        if isinstance(result, Exception):
            return Verdict(True, False, [f"match condition {condition['name']}: {result}"])
        if result is not True and result != celtypes.BoolType(True):
            return Verdict(False, True)
    variables: dict[celtypes.StringType, Any] = {}
    for var in spec["variables"]:
        value = _evaluate(var["expression"], {**activation, "variables": _map(variables)})
        variables[celtypes.StringType(var["name"])] = value
    activation["variables"] = _map(variables)
    failures = []
    for validation in spec["validations"]:
        result = _evaluate(validation["expression"], activation)
        if isinstance(result, Exception) or result != celtypes.BoolType(True):
            failures.append(" ".join(validation["message"].split()))
    return Verdict(True, not failures, failures)


def _map(values: dict[celtypes.StringType, Any]) -> celtypes.MapType:
    return celtypes.MapType(dict(values))


def driver_of(notebook_id: str, secret_env: dict[str, str] | None = None) -> tuple[str, Obj]:
    """A cluster-mode notebook's Sail driver pod and the username its token has."""
    spec = SessionSpec(
        notebook_id,
        "S1",
        "tok",
        WorkloadSpec(mode="cluster", workers=2, env={"TZ": "UTC"}, secret_env=secret_env or {}),
        f"/notebooks/{notebook_id}",
    )
    driver = objects.sail_pod(spec, KS)
    account = driver["spec"]["serviceAccountName"]
    assert account == n.rbac_name(notebook_id)
    return f"system:serviceaccount:{NS}:{account}", driver


USER, DRIVER = driver_of("NB7X")
WORKER = sail_worker_pod(DRIVER)
OTHER_USER, OTHER_DRIVER = driver_of("OTHER1")
OTHER_WORKER = sail_worker_pod(OTHER_DRIVER)


def other_notebook_pods() -> dict[str, Obj]:
    spec = SessionSpec("OTHER1", "S1", "tok", WorkloadSpec(), "/notebooks/OTHER1")
    return {
        "marimo": objects.marimo_pod(spec, KS),
        "sail": objects.sail_pod(spec, KS),
        "worker": OTHER_WORKER,
    }


def test_the_policy_and_binding_are_valid_manifests_wired_into_the_base() -> None:
    from test_k8s_ops_manifests import base_documents, validate

    policy, binding = policy_documents()
    for doc in (policy, binding):
        validate(doc)  # the Kubernetes 1.30 and 1.37 schemas, strict
    kinds = {d["kind"] for d in base_documents()}
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds
    # Our evaluator provides request, object, oldObject and variables only.
    text = (BASE / "admission-policy.yaml").read_text()
    for unsupported in ("params", "namespaceObject", "authorizer", ".?", "lowerAscii"):
        assert unsupported not in text.split("apiVersion", 1)[1], unsupported


def test_the_policy_names_what_the_runtime_and_ops_use() -> None:
    """The namespace, the driver's ServiceAccount name and the label keys in
    the policy are those of ops/ and names.py."""
    config = next(d for d in base_documents() if d["kind"] == "ConfigMap")
    assert config["data"]["NOTEBOOKS_K8S_NAMESPACE"] == NS
    text = (BASE / "admission-policy.yaml").read_text()
    for key in (n.NOTEBOOK, n.COMPONENT, n.MANAGED_BY, n.SESSION):
        assert f"'{key}'" in text, key
    assert f"== '{n.SAIL_WORKER}'" in text and f"== '{n.MANAGER}'" in text
    # every label our worker template sets is allowed (EXTRA_POD_LABELS: none in ops/)
    assert config["data"].get("NOTEBOOKS_K8S_EXTRA_POD_LABELS", "{}") in ("{}", "")
    # what a real id's driver name looks like
    for nid in ("A", "Z" * 20, "0X9"):
        assert admit("CREATE", driver_of(nid)[0], sail_worker_pod(driver_of(nid)[1])).allowed


def test_the_drivers_own_worker_pod_is_allowed_and_valid() -> None:
    from test_k8s_ops_manifests import validate

    validate(WORKER)  # a real Pod, as the API server would take it
    verdict = admit("CREATE", USER, WORKER)
    assert verdict.applies and verdict.allowed, verdict.failures
    assert WORKER["metadata"]["labels"][n.COMPONENT] == n.SAIL_WORKER
    # and the pods it deletes when it stops (deletecollection: DELETE per item)
    assert admit("DELETE", USER, old=WORKER).allowed
    # an update that keeps it its own worker
    relabelled = copy.deepcopy(WORKER)
    relabelled["metadata"]["labels"][n.SESSION] = "S2"
    assert admit("UPDATE", USER, relabelled, old=WORKER).allowed


def test_a_worker_takes_its_own_notebooks_secret_environment() -> None:
    """The worker template names the session's secret-environment Secret
    (docs/api.md "Secret environment"): admitted for its own notebook only."""
    user, driver = driver_of("NB7X", {"DB_PASSWORD": "p"})
    worker = sail_worker_pod(driver)
    env_from = worker["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"secretRef": {"name": "nb-nb7x-s1-env"}}]
    verdict = admit("CREATE", user, worker)
    assert verdict.applies and verdict.allowed, verdict.failures
    # the same pod from another notebook's driver is refused
    assert not admit("CREATE", OTHER_USER, worker).allowed


def _with(pod: Obj, change: Any) -> Obj:
    pod = copy.deepcopy(pod)
    change(pod)
    return pod


def _label(key: str, value: str | None) -> Any:
    def change(pod: Obj) -> None:
        if value is None:
            pod["metadata"]["labels"].pop(key, None)
        else:
            pod["metadata"]["labels"][key] = value

    return change


def _spec(key: str, value: Any) -> Any:
    return lambda pod: pod["spec"].__setitem__(key, value)


def _volume(source: Obj) -> Any:
    def change(pod: Obj) -> None:
        pod["spec"]["volumes"].append({"name": "x", **source})
        pod["spec"]["containers"][0]["volumeMounts"].append({"name": "x", "mountPath": "/x"})

    return change


def _env_from(var: Obj) -> Any:
    return lambda pod: pod["spec"]["containers"][0]["env"].append(var)


SECRET_REF = {"secretKeyRef": {"name": "nb-other1-s1-token", "key": "token"}}

# The start of each validation's message, to check each case is refused for its reason.
ID = "a Sail driver may create, change and delete only pods labelled"
WORKER_ONLY = "a Sail driver may create, change and delete only Sail worker pods"
LABELS = "a Sail worker pod carries only the labels"
NAME = "a Sail worker pod is named"
META = "a Sail worker pod has no annotations"
HOST = "a Sail worker pod names no node"
ACCOUNT = "a Sail worker pod runs as the namespace's default ServiceAccount"
VOLUMES = "a Sail worker pod mounts emptyDir volumes only"
ENV = "a Sail worker pod's env comes from values"


def _meta(key: str, value: Any) -> Any:
    return lambda pod: pod["metadata"].__setitem__(key, value)


def _container(key: str, value: Any) -> Any:
    return lambda pod: pod["spec"]["containers"][0].__setitem__(key, value)


DENIED_CREATES: dict[str, tuple[str, Any]] = {
    "another notebook's id": (ID, _label(n.NOTEBOOK, "OTHER1")),
    "no notebook id": (ID, _label(n.NOTEBOOK, None)),
    "an id one character shorter": (ID, _label(n.NOTEBOOK, "NB7")),
    "an id in lower case": (ID, _label(n.NOTEBOOK, "nb7x")),
    "a pattern for an id": (ID, _label(n.NOTEBOOK, ".*")),
    "a Marimo component": (WORKER_ONLY, _label(n.COMPONENT, n.MARIMO)),
    "a Sail component": (WORKER_ONLY, _label(n.COMPONENT, n.SAIL)),
    "no component": (WORKER_ONLY, _label(n.COMPONENT, None)),
    "a warm-pool label another start would claim": (LABELS, _label(POOL, "0123456789abcdef")),
    "a label of its own choosing": (LABELS, _label("app", "notebooks-proxy")),
    "the proxy's name label": (LABELS, _label("app.kubernetes.io/name", "notebooks-proxy")),
    "not managed by notebooks": (LABELS, _label(n.MANAGED_BY, None)),
    "another notebook's pod name": (NAME, _meta("name", "nb-other1-s1-marimo")),
    "a name outside its prefix": (NAME, _meta("name", "evil")),
    "a finalizer that would keep it forever": (META, _meta("finalizers", ["example.com/x"])),
    "an extra network (annotation)": (
        META,
        _meta("annotations", {"k8s.v1.cni.cncf.io/networks": "host-net"}),
    ),
    "a nodeName": (HOST, _spec("nodeName", "node-1")),
    "hostNetwork": (HOST, _spec("hostNetwork", True)),
    "hostPID": (HOST, _spec("hostPID", True)),
    "hostIPC": (HOST, _spec("hostIPC", True)),
    "another ServiceAccount": (ACCOUNT, _spec("serviceAccountName", "nb-other1-sail-driver")),
    "the worker's ServiceAccount": (ACCOUNT, _spec("serviceAccountName", "notebooks-worker")),
    "a mounted token": (ACCOUNT, _spec("automountServiceAccountToken", True)),
    "no word on the token": (ACCOUNT, lambda p: p["spec"].pop("automountServiceAccountToken")),
    "a hostPath volume": (VOLUMES, _volume({"hostPath": {"path": "/"}})),
    "another notebook's PVC": (
        VOLUMES,
        _volume({"persistentVolumeClaim": {"claimName": "nb-other1-data"}}),
    ),
    "another notebook's token Secret": (
        VOLUMES,
        _volume({"secret": {"secretName": "nb-other1-s1-token"}}),
    ),
    "a projected ServiceAccount token": (
        VOLUMES,
        _volume({"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}),
    ),
    "a ConfigMap it does not need": (VOLUMES, _volume({"configMap": {"name": "kube-root-ca.crt"}})),
    "an ephemeral PVC": (
        VOLUMES,
        _volume(
            {"ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}
        ),
    ),
    "an env var from a Secret": (ENV, _env_from({"name": "T", "valueFrom": SECRET_REF})),
    "an env var from a ConfigMap": (
        ENV,
        _env_from({"name": "T", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}),
    ),
    "envFrom a Secret": (ENV, _container("envFrom", [{"secretRef": {"name": "nb-other1-data"}}])),
    "envFrom another notebook's secret environment": (
        ENV,
        _container("envFrom", [{"secretRef": {"name": "nb-other1-s1-env"}}]),
    ),
    "envFrom its own token Secret": (
        ENV,
        _container("envFrom", [{"secretRef": {"name": "nb-nb7x-s1-token"}}]),
    ),
    "envFrom a name that only starts like its own": (
        ENV,
        _container("envFrom", [{"secretRef": {"name": "nb-nb7x-s1-env-x"}}]),
    ),
    "envFrom a ConfigMap": (
        ENV,
        _container("envFrom", [{"configMapRef": {"name": "nb-nb7x-s1-env"}}]),
    ),
    "an init container reading a Secret": (
        ENV,
        _spec(
            "initContainers",
            [{"name": "i", "image": "busybox", "env": [{"name": "T", "valueFrom": SECRET_REF}]}],
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(DENIED_CREATES))
def test_a_driver_cannot_create_anything_but_its_own_worker(case: str) -> None:
    reason, change = DENIED_CREATES[case]
    pod = _with(WORKER, change)
    verdict = admit("CREATE", USER, pod)
    assert verdict.applies and not verdict.allowed, case
    assert any(f.startswith(reason) for f in verdict.failures), (case, verdict.failures)


def test_a_driver_cannot_create_another_notebooks_worker_or_its_marimo() -> None:
    for pod in other_notebook_pods().values():
        assert not admit("CREATE", USER, pod).allowed
    # nor its own notebook's Sail or Marimo pod
    spec = SessionSpec("NB7X", "S1", "tok", WorkloadSpec(mode="cluster"), "/notebooks/NB7X")
    for pod in (objects.marimo_pod(spec, KS), objects.sail_pod(spec, KS)):
        verdict = admit("CREATE", USER, pod)
        assert verdict.applies and not verdict.allowed


def test_a_driver_deletes_and_changes_only_its_own_workers() -> None:
    for name, pod in other_notebook_pods().items():
        verdict = admit("DELETE", USER, old=pod)
        assert verdict.applies and not verdict.allowed, name
        assert any(f.startswith(ID) for f in verdict.failures), name
    # not its own notebook's Marimo, nor itself
    spec = SessionSpec("NB7X", "S1", "tok", WorkloadSpec(mode="cluster"), "/notebooks/NB7X")
    for pod in (objects.marimo_pod(spec, KS), DRIVER):
        verdict = admit("DELETE", USER, old=pod)
        assert not verdict.allowed and verdict.failures == [
            WORKER_ONLY + " (app.kubernetes.io/component=worker)"
        ]
    # no relabelling of its worker as a Marimo or as another notebook's
    as_marimo = _with(WORKER, _label(n.COMPONENT, n.MARIMO))
    assert not admit("UPDATE", USER, as_marimo, old=WORKER).allowed
    as_other = _with(WORKER, _label(n.NOTEBOOK, "OTHER1"))
    assert not admit("UPDATE", USER, as_other, old=WORKER).allowed
    # nor taking another notebook's worker by relabelling it as its own
    taken = _with(OTHER_WORKER, _label(n.NOTEBOOK, "NB7X"))
    assert not admit("UPDATE", USER, taken, old=OTHER_WORKER).allowed


def test_the_policy_applies_to_sail_drivers_only() -> None:
    marimo = other_notebook_pods()["marimo"]
    worker_sa = "system:serviceaccount:notebooks:notebooks-worker"
    for username in (
        worker_sa,  # the reconciler creates Marimo pods, with volumes and a token Secret
        "kubernetes-admin",
        "system:serviceaccount:elsewhere:nb-nb7x-sail-driver",  # another namespace's account
        "system:serviceaccount:notebooks-sessions:default",
    ):
        verdict = admit("CREATE", username, marimo)
        assert not verdict.applies and verdict.allowed, username
    # pods outside the sessions namespace are not the binding's
    assert not admit("CREATE", USER, marimo, namespace="default").applies
