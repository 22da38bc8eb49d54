"""ops/ and the runtime's objects, validated against the Kubernetes OpenAPI
JSON schemas (the `kubernetes-validate` package: schemas generated from the
Kubernetes OpenAPI spec, strict mode = unknown fields are errors), for the
oldest and newest Kubernetes versions we claim: 1.30 (the api's and proxy's
native preStop `sleep`) and 1.37."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from common.images import image_allowed, parse_allowlist
from reconciler.runtime.base import ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.pool import warm_pod
from reconciler.runtime.kubernetes.settings import KubernetesSettings

CLUSTER_SPEC = SessionSpec("NB", "S1", "tok", WorkloadSpec(mode="cluster"), "/notebooks/NB")

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "ops" / "k8s" / "base"
OVERLAY = ROOT / "ops" / "k8s" / "overlays" / "example"
VERSIONS = ("1.30.0", "1.37.0")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def validate(doc: dict[str, Any]) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            raise AssertionError(
                f"{name} invalid for {version}: {exc.message} at {exc.path}"
            ) from None


def env_file(path: Path) -> dict[str, str]:
    """A kustomize env file: KEY=value lines, taken verbatim; `#` lines are comments."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    pairs = [line.split("=", 1) for line in lines if not line.lstrip().startswith("#")]
    return {key: value for key, value in pairs}


def base_documents() -> list[dict[str, Any]]:
    """The base as written: its resources, and its generated ConfigMaps under
    their plain names (kustomize adds the content hash when rendering)."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    for gen in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for name in gen.get("envs", []):
            data |= env_file(BASE / name)
        data |= dict(literal.split("=", 1) for literal in gen.get("literals", []))
        metadata = {"name": gen["name"], "namespace": gen["namespace"]}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return docs


def rendered_overlay() -> list[dict[str, Any]]:
    assert os.access(KUBECTL, os.X_OK), (
        "kubectl is needed to render ops/k8s/overlays/example (`kubectl kustomize`);"
        " .ci/run installs it where it is missing"
    )
    out = subprocess.run(
        [KUBECTL, "kustomize", str(OVERLAY)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": "/dev/null"},
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _config_map_refs(pod: dict[str, Any]) -> set[str]:
    """Every ConfigMap name a pod spec refers to (envFrom, env, volumes)."""
    refs = {v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v}
    for c in pod["containers"] + pod.get("initContainers", []):
        refs |= {e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e}
        refs |= {
            e["valueFrom"]["configMapKeyRef"]["name"]
            for e in c.get("env", [])
            if "configMapKeyRef" in e.get("valueFrom", {})
        }
    return refs


def test_a_changed_setting_rolls_every_pod_that_reads_it() -> None:
    """The processes read their settings only at start, so the ConfigMap is
    generated: its name carries a hash of its content, and every Deployment
    and Job names exactly that one (a changed value is a new pod template)."""
    docs = rendered_overlay()
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    name = config["metadata"]["name"]
    assert re.fullmatch(r"notebooks-config-[a-z0-9]{10}", name), name
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 4
    for d in workloads:
        refs = _config_map_refs(d["spec"]["template"]["spec"])
        assert refs == {name}, (d["metadata"]["name"], refs)


def test_no_autoscaled_deployment_fixes_its_replica_count() -> None:
    """A Deployment an HPA scales must not set spec.replicas (Kubernetes'
    own advice): every `kubectl apply` would reset the count the HPA chose,
    cutting capacity mid-deploy and, for the proxy, dropping WebSockets."""
    for docs in (base_documents(), rendered_overlay()):
        scaled = {
            d["spec"]["scaleTargetRef"]["name"]
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
        }
        assert scaled
        for d in docs:
            if d["kind"] == "Deployment" and d["metadata"]["name"] in scaled:
                assert "replicas" not in d["spec"], d["metadata"]["name"]


def test_the_platform_kernel_image_is_an_allowed_image() -> None:
    """An org admin may name the platform's own kernel image in a workload
    config: NOTEBOOKS_ALLOWED_IMAGES must allow the images the ConfigMap
    runs by default, in the base and in the overlay that changes them."""
    for docs in (base_documents(), rendered_overlay()):
        configs = [d for d in docs if d["kind"] == "ConfigMap"]
        (data,) = [c["data"] for c in configs if "NOTEBOOKS_K8S_MARIMO_IMAGE" in c.get("data", {})]
        allowed = parse_allowlist(data["NOTEBOOKS_ALLOWED_IMAGES"])
        assert allowed
        for name in ("NOTEBOOKS_K8S_MARIMO_IMAGE", "NOTEBOOKS_K8S_SAIL_IMAGE"):
            assert image_allowed(data[name], allowed), (name, data[name], allowed)


def test_the_console_may_frame_the_notebooks_it_opens() -> None:
    """The console (at NOTEBOOKS_API_PUBLIC_URL) shows notebooks in an iframe:
    the proxy's frame-ancestors must name its origin, or browsers refuse it."""
    for docs in (base_documents(), rendered_overlay()):
        (config,) = [
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("notebooks-config")
        ]
        data = config["data"]
        assert data["NOTEBOOKS_API_PUBLIC_URL"] in data["NOTEBOOKS_FRAME_ANCESTORS"].split()


def test_validator_rejects_what_it_should() -> None:
    """The schemas are really applied: an unknown field and a wrong type fail."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "c", "image": "i", "readinessprobe": {}}]},
    }
    with pytest.raises(AssertionError):
        validate(bad)
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    with pytest.raises(AssertionError):
        validate(bad)


def test_base_manifests_are_valid() -> None:
    docs = base_documents()
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ResourceQuota",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    } <= kinds
    for doc in docs:
        validate(doc)


def test_every_scraped_metrics_port_is_admitted_by_its_network_policy() -> None:
    # A NetworkPolicy that denies Prometheus leaves its alerts without data.
    docs = base_documents()
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    scraped = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and "prometheus.io/port" in d["spec"]["template"]["metadata"].get("annotations", {})
    ]
    assert {d["metadata"]["name"] for d in scraped} == {
        "notebooks-api",
        "notebooks-worker",
        "notebooks-proxy",
    }
    for deployment in scraped:
        template = deployment["spec"]["template"]["metadata"]
        port = int(template["annotations"]["prometheus.io/port"])
        labels = template["labels"]
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == deployment["metadata"]["namespace"]
            and p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        ]
        assert selecting, deployment["metadata"]["name"]
        admitted = {
            rule_port["port"]
            for p in selecting
            for rule in p["spec"].get("ingress", [])
            for rule_port in rule.get("ports", [])
        }
        assert port in admitted, (deployment["metadata"]["name"], port, admitted)


def test_kustomize_overlay_renders_offline_and_is_valid() -> None:
    docs = rendered_overlay()
    for doc in docs:
        validate(doc)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"notebooks-api", "notebooks-worker", "notebooks-proxy"}
    secret = next(d for d in docs if d["kind"] == "Secret")
    for dep in deployments.values():
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["image"] == "registry.example.com/notebooks:0.1.0"
        assert c["args"] in (["api"], ["worker"], ["proxy"])
        assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["requests"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        # the generated (hash-suffixed) Secret is the one referenced
        refs = [e.get("secretRef", {}).get("name") for e in c["envFrom"]]
        assert secret["metadata"]["name"] in refs
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
        targets = {d["metadata"]["name"] for d in docs if d["kind"] == kind}
        assert targets == set(deployments)


def test_no_deployment_runs_new_code_on_an_old_schema() -> None:
    """`kubectl apply` starts the release Job and rolls the Deployments at
    once. Each Deployment must therefore wait for the schema itself: either
    an init container runs `migrate` (idempotent, serialized by a lock), or
    its readiness is the api's /readyz, which answers 503 until every
    migration is applied (api/app.py)."""
    for doc in base_documents() + rendered_overlay():
        if doc["kind"] != "Deployment":
            continue
        name, pod = doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        inits = [c for c in pod.get("initContainers", []) if c.get("args") == ["migrate"]]
        gated = main["readinessProbe"].get("httpGet", {}).get("path") == "/readyz"
        assert inits or gated, f"{name} may start before the migrations"
        for init in inits:  # the same image and settings as the process it guards
            assert init["image"] == main["image"], name
            assert init["envFrom"] == main["envFrom"], name


def test_commands_are_the_procfile_processes() -> None:
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    commands = {k.strip(): v.split() for k, v in procfile.items()}
    docs = base_documents()
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            (c,) = d["spec"]["template"]["spec"]["containers"]
            assert ["notebooks", *c["args"]] in commands.values()
    dockerfile = (ROOT / "ops" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["notebooks"]' in dockerfile


def test_worker_role_is_least_privilege_and_covers_what_the_runtime_creates() -> None:
    docs = base_documents()
    role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "notebooks-worker"
    )
    assert role["metadata"]["namespace"] == "notebooks-sessions"
    allowed = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert not any("*" in x for x in allowed)
    assert not {r for _, r, _ in allowed} & {"nodes", "clusterroles", "clusterrolebindings"}
    spec = SessionSpec("NB", "S", "t", WorkloadSpec(mode="cluster"), "/notebooks/NB")
    plural = {
        "Pod": ("", "pods"),
        "Service": ("", "services"),
        "Secret": ("", "secrets"),
        "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
        "ServiceAccount": ("", "serviceaccounts"),
        "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
        "Role": ("rbac.authorization.k8s.io", "roles"),
        "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    }
    for obj in objects.session_objects(spec, KubernetesSettings()):
        group, resource = plural[obj["kind"]]
        # the PVC is deleted by name (with the notebook), everything else by listing it
        verbs = ["create", "delete"]
        if obj["kind"] != "PersistentVolumeClaim":
            verbs.append("list")
        for verb in verbs:
            assert (group, resource, verb) in allowed, (obj["kind"], verb)
    # the exact set, recorded from the runtime's own requests, is checked in
    # tests/integration/kubernetes/test_k8s_rbac.py
    assert ("", "pods", "watch") in allowed
    assert ("", "pods", "patch") in allowed  # claiming a warm pod
    # RBAC forbids granting what one does not hold: the driver Role must be a subset
    (driver_role,) = [
        o for o in objects.driver_rbac(CLUSTER_SPEC, KubernetesSettings()) if o["kind"] == "Role"
    ]
    for rule in driver_role["rules"]:
        for verb in rule["verbs"]:
            assert ("", "pods", verb) in allowed


def test_runtime_objects_are_valid_for_every_mode() -> None:
    ks = KubernetesSettings(
        storage_class="fast", proxy_namespace="notebooks", image_pull_secrets=("regcred",)
    )
    for mode in ("standalone", "cluster"):
        spec = SessionSpec(
            "NB1",
            "S1",
            "tok",
            WorkloadSpec(
                mode=mode,
                workers=2,
                env={"A": "b"},
                sail=ResourceSpec("img", "1", "2Gi"),
                node_selector={"pool": "nb"},
            ),
            "/notebooks/NB1",
        )
        for obj in objects.session_objects(spec, ks):
            validate(obj)
        if mode == "standalone":
            validate(warm_pod(spec.workload, ks, "abc123"))
        if mode == "cluster":
            env = {
                e["name"]: e.get("value")
                for e in objects.sail_pod(spec, ks)["spec"]["containers"][0]["env"]
            }
            template = json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])
            validate(
                {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": "w"},
                    "template": template,
                }
            )


def test_settings_env_names_exist_in_the_code() -> None:
    """Every NOTEBOOKS_* name in the ConfigMap and the example Secret is read
    somewhere in the code (no silently ignored setting)."""
    sources = "".join(
        p.read_text()
        for pkg in ("common", "reconciler", "api", "proxy", "cli")
        for p in (ROOT / pkg).rglob("*.py")
    )
    config = next(d for d in base_documents() if d["kind"] == "ConfigMap")
    names = set(config["data"])
    names |= {
        line.split("=", 1)[0]
        for line in (OVERLAY / "secrets.env.example").read_text().splitlines()
        if line
    }
    for name in names:
        key = name.removeprefix("NOTEBOOKS_K8S_")
        assert name in sources or (name != key and f'"{key}"' in sources), name


def test_every_setting_the_code_reads_is_set_or_left_at_its_default_on_purpose() -> None:
    """A setting added to the code (NOTEBOOKS_DB_POOL_WAIT_SECONDS, say) must
    be decided on for ops/: a key of the ConfigMap, or named in its comment of
    settings left at their defaults. Secrets are never in the ConfigMap."""
    sources = "".join(
        p.read_text()
        for pkg in ("common", "reconciler", "api", "proxy", "cli")
        for p in (ROOT / pkg).rglob("*.py")
    )
    read = set(re.findall(r'"(NOTEBOOKS_[A-Z0-9_]*[A-Z0-9])"', sources))
    k8s = (ROOT / "reconciler" / "runtime" / "kubernetes" / "settings.py").read_text()
    read |= {f"NOTEBOOKS_K8S_{name}" for name in re.findall(r'\b(?:get|number)\("([A-Z_]+)"', k8s)}
    assert {"NOTEBOOKS_DB_POOL_WAIT_SECONDS", "NOTEBOOKS_K8S_WARM_POOL_SIZE"} <= read
    text = (BASE / "config.env").read_text()
    config = next(d for d in base_documents() if d["kind"] == "ConfigMap")
    comments = "".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    secrets = {"DATABASE_URL", "NOTEBOOKS_SECRET_KEY", "NOTEBOOKS_SIGNING_KEYS"}
    assert not secrets & set(config["data"]), "a secret in the ConfigMap"
    for name in sorted(read - secrets):
        assert name in config["data"] or re.search(rf"\b{name}\b", comments), name


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    pods = []
    for d in base_documents():
        if d["kind"] in ("Deployment", "Job"):
            pods.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
    for mode in ("standalone", "cluster"):
        spec = SessionSpec("NB1", "S1", "t", WorkloadSpec(mode=mode), "/notebooks/NB1")
        for obj in objects.session_objects(spec, KubernetesSettings()):
            if obj["kind"] == "Pod":
                pods.append((obj["metadata"]["name"], obj["spec"]))
        env = {
            e["name"]: e.get("value")
            for e in objects.sail_pod(spec, KubernetesSettings())["spec"]["containers"][0]["env"]
        }
        if "SAIL_KUBERNETES__WORKER_POD_TEMPLATE" in env:
            template = json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])
            pods.append(("sail-worker", template["spec"]))
    return pods


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    """Both namespaces enforce `restricted`; a pod that does not meet it is
    refused by the API server, which the emulator would not tell us."""
    allowed_volumes = {"emptyDir", "persistentVolumeClaim", "secret", "configMap", "projected"}
    for name, pod in _pod_specs():
        psc = pod.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, name
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for vol in pod.get("volumes", []):
            assert set(vol) - {"name"} <= allowed_volumes, (name, vol)
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, (name, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (name, c["name"])
            assert not sc.get("privileged"), (name, c["name"])
            assert sc.get("runAsUser", psc.get("runAsUser")) != 0, (name, c["name"])
            assert not any("hostPort" in p for p in c.get("ports", [])), (name, c["name"])


def test_dockerfiles_copy_what_exists_and_pin_what_the_project_pins() -> None:
    dockerfile = (ROOT / "ops" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _dest = line.split()[1:]
            for src in sources:
                assert (ROOT / src).exists(), src
    pyproject = (ROOT / "pyproject.toml").read_text()
    for req in (ROOT / "ops" / "kernel" / "requirements.txt").read_text().splitlines():
        if "==" in req and not req.startswith("#"):
            assert f'"{req.strip()}"' in pyproject, req


def test_the_sessions_quota_bounds_notebooks_and_admits_every_pod_they_make() -> None:
    """A default for operators to size (ops/k8s/base/quota.yaml). A quota on
    a compute resource makes the API server refuse every pod that does not
    set it, so each one it tracks must be set by every container the runtime
    (and a cluster-mode Sail driver) creates: no `limits.cpu`."""
    from sail_worker import sail_worker_pod

    (quota,) = [d for d in base_documents() if d["kind"] == "ResourceQuota"]
    assert quota["metadata"]["namespace"] == "notebooks-sessions"
    hard = quota["spec"]["hard"]
    for key in (
        "pods",
        "requests.cpu",
        "requests.memory",
        "limits.memory",
        "persistentvolumeclaims",
        "requests.storage",
    ):
        assert key in hard, key
    compute = {k for k in hard if k.split(".")[0] in ("requests", "limits")} - {"requests.storage"}
    assert "limits.cpu" not in compute and "cpu" not in hard and "memory" not in hard
    ks = KubernetesSettings(namespace="notebooks-sessions")
    pods = []
    for mode in ("standalone", "cluster"):
        spec = SessionSpec("NB1", "S1", "t", WorkloadSpec(mode=mode), "/notebooks/NB1")
        pods += [o for o in objects.session_objects(spec, ks) if o["kind"] == "Pod"]
        if mode == "cluster":
            pods.append(sail_worker_pod(objects.sail_pod(spec, ks)))
        else:
            pods.append(warm_pod(spec.workload, ks, "abc123"))
    for pod in pods:
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            for key in compute:
                kind, resource = key.split(".", 1)
                assert resource in c["resources"].get(kind, {}), (pod["metadata"]["name"], key)
