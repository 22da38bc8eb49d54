"""The object builders are pure: what they return is what the cluster gets."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from reconciler.runtime.base import ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import names as n
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.settings import KubernetesSettings

KS = KubernetesSettings(
    namespace="nbs",
    sail_image="reg/sail:1",
    marimo_image="reg/kernel:1",
    proxy_pod_labels={"app.kubernetes.io/name": "notebooks-proxy"},
    storage_class="fast",
    storage_size="2Gi",
)


def spec(**workload: object) -> SessionSpec:
    return SessionSpec(
        notebook_id="NB1",
        session_id="SESS1",
        session_token="secret-token",
        workload=WorkloadSpec(**workload),  # type: ignore[arg-type]
        base_url="/notebooks/NB1",
    )


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_standalone_session_has_pods_services_secret_pvc_and_policies() -> None:
    objs = objects.session_objects(spec(), KS)
    kinds = [o["kind"] for o in objs]
    assert kinds == [
        "Secret",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "NetworkPolicy",
        "Service",
        "Service",
        "Pod",
        "Pod",
    ]
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels[n.MANAGED_BY] == "notebooks"
        assert labels[n.NOTEBOOK] == "NB1"
        assert o["metadata"]["namespace"] == "nbs"
    for pod in by_kind(objs, "Pod"):
        assert pod["metadata"]["labels"][n.SESSION] == "SESS1"
    # nothing cluster-mode in standalone
    assert not by_kind(objs, "Role") and not by_kind(objs, "ServiceAccount")


def test_sail_pod_runs_spark_connect_server_with_grpc_readiness() -> None:
    pod = objects.sail_pod(spec(), KS)
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["sail", "spark", "server", "--ip", "0.0.0.0", "--port", "50051"]
    assert c["image"] == "reg/sail:1"
    assert c["readinessProbe"]["grpc"] == {"port": 50051}
    assert pod["metadata"]["name"] == "nb-nb1-sess1-sail"
    assert "SAIL_MODE" not in env_of(c)
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_marimo_pod_serves_under_base_url_with_token_file_and_spark_remote() -> None:
    pod = objects.marimo_pod(spec(), KS)
    c = pod["spec"]["containers"][0]
    cmd = c["command"]
    # --quiet: Marimo's banner would print its token into the pod's log
    assert cmd[:5] == ["marimo", "--quiet", "edit", "/data/notebook.py", "--headless"]
    assert cmd[cmd.index("--base-url") + 1] == "/notebooks/NB1"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    token_file = cmd[cmd.index("--token-password-file") + 1]
    assert token_file == "/var/run/secrets/notebooks/token"
    assert env_of(c)["SPARK_REMOTE"] == "sc://nb-nb1-sail.nbs.svc:50051"
    assert c["readinessProbe"]["httpGet"] == {"path": "/notebooks/NB1/health", "port": 2718}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "nb-nb1-data"
    assert vols["token"]["secret"]["secretName"] == "nb-nb1-sess1-token"
    # the file is seeded from the template only when missing
    seed = pod["spec"]["initContainers"][0]
    assert "os.path.exists" in seed["command"][2]
    assert "SparkSession.builder.remote" in seed["env"][0]["value"]


SEED = 'import marimo\r\napp = marimo.App()\n# données, "quoted" and $(NOT_EXPANDED)\n'


def test_a_notebook_from_a_file_is_seeded_from_a_secret_of_its_session() -> None:
    seeded = replace(spec(), seed=SEED)
    objs = objects.session_objects(seeded, KS)
    secrets = {o["metadata"]["name"]: o for o in by_kind(objs, "Secret")}
    # The token's Secret stays small: the reconciler reads it on each pass.
    assert set(secrets["nb-nb1-sess1-token"]["data"]) == {"token"}
    seed = secrets["nb-nb1-sess1-seed"]
    assert base64.b64decode(seed["data"][n.SEED_KEY]).decode() == SEED
    assert seed["immutable"] is True
    assert seed["metadata"]["labels"][n.SESSION] == "SESS1"  # removed with its session
    kinds = [o["kind"] for o in objs]
    assert kinds.index("Secret", 1) < kinds.index("Pod")  # made before the pod mounting it
    pod = objects.marimo_pod(seeded, KS)
    init = pod["spec"]["initContainers"][0]
    assert init["command"][3:] == ["/data/notebook.py", "/var/run/notebooks-seed/seed.py"]
    assert {"name": "seed", "mountPath": n.SEED_DIR, "readOnly": True} in init["volumeMounts"]
    vols = {v["name"]: v["secret"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert vols["seed"]["secretName"] == "nb-nb1-sess1-seed"
    assert vols["seed"]["items"] == [{"key": "seed.py", "path": "seed.py"}]
    # Marimo's container sees its token only; the seeding one never the token.
    assert vols["token"]["items"] == [{"key": "token", "path": "token"}]
    marimo_mounts = {m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "seed" not in marimo_mounts and "token" in marimo_mounts
    assert "token" not in {m["name"] for m in init["volumeMounts"]}
    # The file travels in the Secret, not in the pod's spec (which a watch repeats).
    assert "données" not in json.dumps(pod)


def test_a_notebook_without_a_file_has_no_seed_secret_or_volume() -> None:
    assert len(by_kind(objects.session_objects(spec(), KS), "Secret")) == 1
    pod = objects.marimo_pod(spec(), KS)
    assert pod["spec"]["initContainers"][0]["command"][3:] == ["/data/notebook.py"]
    assert "seed" not in {v["name"] for v in pod["spec"]["volumes"]}


def _run_seed(pod: dict, data_dir: Path, seed_dir: Path) -> None:
    """The init container's script, run for real, with its paths moved here."""
    init = pod["spec"]["initContainers"][0]
    args = [
        a.replace(n.DATA_DIR, str(data_dir)).replace(n.SEED_DIR, str(seed_dir))
        for a in init["command"][3:]
    ]
    env = {e["name"]: e["value"].replace("$$", "$") for e in init["env"]}  # as the kubelet does
    subprocess.run(
        [sys.executable, "-c", init["command"][2], *args],
        # A C locale without coercion: a default encoding of ASCII.
        env={**env, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"},
        check=True,
    )


def test_the_seed_script_writes_the_template_or_the_file_once(tmp_path: Path) -> None:
    data, seeds = tmp_path / "data", tmp_path / "seed"
    data.mkdir()
    seeds.mkdir()
    (seeds / n.SEED_KEY).write_bytes(SEED.encode())
    notebook = data / "notebook.py"

    _run_seed(objects.marimo_pod(spec(), KS), data, seeds)
    assert "SparkSession.builder.remote" in notebook.read_text()

    notebook.unlink()
    seeded = objects.marimo_pod(replace(spec(), seed=SEED), KS)
    _run_seed(seeded, data, seeds)  # a C locale: the file is still UTF-8
    assert notebook.read_bytes() == SEED.encode()  # byte for byte, its CRLF too
    assert sorted(p.name for p in data.iterdir()) == ["notebook.py"]  # written whole, renamed

    notebook.write_text("edited by its member\n")
    _run_seed(seeded, data, seeds)  # a later start: the member's file stays
    assert notebook.read_text() == "edited by its member\n"


def test_a_restore_is_seeded_over_the_file_keeping_aside_what_no_copy_has(
    tmp_path: Path,
) -> None:
    """A restored version (docs/api.md "Restoring a version") goes over the
    notebook's file, once per session; a file that is not the copy it
    replaces (edits whose copy failed) is kept beside it, never lost. The
    program's own cases: tests/unit/reconciler/test_seeding.py."""
    data, seeds = tmp_path / "data", tmp_path / "seed"
    data.mkdir()
    seeds.mkdir()
    (seeds / n.SEED_KEY).write_bytes(SEED.encode())
    notebook, aside = data / "notebook.py", data / "notebook-before-restore-SESS1.py"
    newest = "the newest copy\n"
    restoring = replace(
        spec(), seed=SEED, seed_replaces=hashlib.sha256(newest.encode()).hexdigest()
    )
    pod = objects.marimo_pod(restoring, KS)
    assert pod["spec"]["initContainers"][0]["command"][3:] == [
        "/data/notebook.py",
        "/var/run/notebooks-seed/seed.py",
        restoring.seed_replaces,
        "SESS1",
    ]
    # Its program is one the kubelet passes as written: no $(…) to expand.
    assert "$" not in pod["spec"]["initContainers"][0]["command"][2]

    notebook.write_text("edits no copy has\n")
    _run_seed(pod, data, seeds)
    assert notebook.read_bytes() == SEED.encode()
    assert aside.read_text() == "edits no copy has\n"
    # The pod's sandbox made again (a node's restart) runs its init container
    # again, over what the member has edited since: nothing moves.
    notebook.write_text("edited since\n")
    _run_seed(pod, data, seeds)
    assert notebook.read_text() == "edited since\n"
    assert aside.read_text() == "edits no copy has\n"
    assert sorted(p.name for p in data.iterdir()) == [".restored-SESS1", aside.name, "notebook.py"]


def test_token_secret_holds_the_session_token_only() -> None:
    secret = objects.token_secret(spec(), KS)
    assert secret["metadata"]["name"] == "nb-nb1-sess1-token"
    assert base64.b64decode(secret["data"]["token"]).decode() == "secret-token"
    assert secret["immutable"] is True
    # the token never appears in a pod spec
    assert "secret-token" not in json.dumps(objects.session_objects(spec(), KS)[1:])


def test_pvc_is_per_notebook_with_storage_class() -> None:
    pvc = objects.pvc("NB1", KS)
    assert pvc["metadata"]["name"] == "nb-nb1-data"
    assert n.SESSION not in pvc["metadata"]["labels"]  # outlives sessions
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    default_class = objects.pvc("NB1", KubernetesSettings())
    assert "storageClassName" not in default_class["spec"]


def test_marimo_service_is_headless_and_sail_service_is_not() -> None:
    marimo = objects.service("NB1", n.MARIMO, KS)
    sail = objects.service("NB1", n.SAIL, KS)
    assert marimo["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in sail["spec"]
    assert marimo["spec"]["ports"][0]["port"] == 2718
    assert sail["spec"]["ports"][0]["port"] == 50051
    assert sail["spec"]["selector"] == {n.NOTEBOOK: "NB1", n.COMPONENT: "sail"}


def test_a_busy_component_missing_probes_stays_reachable() -> None:
    """A Sail busy with a heavy job, or a slow Marimo, that misses the
    kubelet's readiness probes must not drop out of its Service (the
    kernel's Spark session, the proxy's DNS): the reconciler judges health
    itself, with a grace. Probes allow 5 s, not the kubelet's 1 s."""
    for component in (n.MARIMO, n.SAIL):
        assert objects.service("NB1", component, KS)["spec"]["publishNotReadyAddresses"] is True
    for pod in (objects.sail_pod(spec(), KS), objects.marimo_pod(spec(), KS)):
        probe = pod["spec"]["containers"][0]["readinessProbe"]
        assert probe["timeoutSeconds"] == 5 and probe["failureThreshold"] == 3


def test_network_policies_admit_proxy_to_marimo_and_only_this_marimo_to_sail() -> None:
    marimo, sail = objects.network_policies("NB1", KS)
    assert marimo["spec"]["podSelector"]["matchLabels"] == {
        n.NOTEBOOK: "NB1",
        n.COMPONENT: "marimo",
    }
    (rule,) = marimo["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": KS.proxy_pod_labels}},
        {"podSelector": {"matchLabels": KS.worker_pod_labels}},
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 2718}]
    other_ns = KubernetesSettings(proxy_namespace="notebooks")
    peer, worker = objects.network_policies("NB1", other_ns)[0]["spec"]["ingress"][0]["from"]
    assert "namespaceSelector" not in worker
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "notebooks"}
    }
    assert peer["podSelector"] == {"matchLabels": other_ns.proxy_pod_labels}
    sources = sail["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {n.NOTEBOOK: "NB1", n.COMPONENT: "marimo"}}} in sources
    # every source is scoped to this notebook: no other notebook's Marimo gets in
    for src in sources:
        sel = src["podSelector"]
        assert sel.get("matchLabels", {}).get(n.NOTEBOOK) == "NB1" or any(
            e["key"] == n.NOTEBOOK and e["values"] == ["NB1"] for e in sel["matchExpressions"]
        )
    assert sail["spec"]["policyTypes"] == ["Ingress", "Egress"]  # egress: test_k8s_egress.py


def test_workload_resources_image_node_selector_and_env_reach_the_pods() -> None:
    s = spec(
        sail=ResourceSpec(image="custom/sail:2", cpu="2", memory="4Gi"),
        marimo=ResourceSpec(cpu="250m", memory="512Mi"),
        node_selector={"pool": "notebooks"},
        env={"AWS_REGION": "eu-west-1", "SPARK_REMOTE": "sc://evil:1"},
    )
    sail = objects.sail_pod(s, KS)
    marimo = objects.marimo_pod(s, KS)
    sc, mc = sail["spec"]["containers"][0], marimo["spec"]["containers"][0]
    assert sc["image"] == "custom/sail:2"
    assert mc["image"] == "reg/kernel:1"  # the config left it empty: the default
    assert sc["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert mc["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert sail["spec"]["nodeSelector"] == {"pool": "notebooks"}
    assert marimo["spec"]["nodeSelector"] == {"pool": "notebooks"}
    assert env_of(sc)["AWS_REGION"] == "eu-west-1"
    # the user's env cannot redirect the kernel to another Spark server
    assert env_of(mc)["SPARK_REMOTE"] == "sc://nb-nb1-sail.nbs.svc:50051"
    defaults = objects.sail_pod(spec(), KS)["spec"]["containers"][0]["resources"]
    assert defaults["requests"] == {"cpu": KS.default_cpu, "memory": KS.default_memory}


def test_every_container_is_non_root_read_only_without_escalation() -> None:
    s = spec(mode="cluster", workers=2)
    pods = by_kind(objects.session_objects(s, KS), "Pod")
    env = env_of(objects.sail_pod(s, KS)["spec"]["containers"][0])
    pods.append(json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"]))
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
        # a writable /tmp because the root filesystem is not, capped so that
        # one notebook cannot fill its node's disk
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}} in pod["spec"]["volumes"]


def test_cluster_mode_runs_sail_as_kubernetes_driver_with_rbac() -> None:
    s = spec(mode="cluster", workers=3)
    objs = objects.session_objects(s, KS)
    sa, role, binding = (
        by_kind(objs, "ServiceAccount")[0],
        by_kind(objs, "Role")[0],
        by_kind(objs, "RoleBinding")[0],
    )
    driver = objects.sail_pod(s, KS)
    # Sail 0.7's calls only: no list or watch (other notebooks' pods stay
    # unreadable), and get of its own pod alone, so the Role is per session
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "deletecollection"]},
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "resourceNames": [driver["metadata"]["name"]],
            "verbs": ["get"],
        },
    ]
    assert role["metadata"]["labels"][n.SESSION] == s.session_id
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "nbs"}
    ]
    assert driver["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert driver["spec"]["automountServiceAccountToken"] is True
    env = env_of(driver["spec"]["containers"][0])
    assert env["SAIL_MODE"] == "kubernetes-cluster"
    assert env["SAIL_KUBERNETES__NAMESPACE"] == "nbs"
    assert env["SAIL_KUBERNETES__DRIVER_POD_NAME"] == driver["metadata"]["name"]
    assert env["SAIL_CLUSTER__WORKER_INITIAL_COUNT"] == "3"
    assert env["SAIL_CLUSTER__DRIVER_EXTERNAL_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    template = json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])
    labels = template["metadata"]["labels"]
    assert labels[n.NOTEBOOK] == "NB1" and labels[n.COMPONENT] == n.SAIL_WORKER
    assert labels[n.SESSION] == "SESS1"


def test_settings_from_env() -> None:
    ks = KubernetesSettings.from_env(
        {
            "NOTEBOOKS_K8S_NAMESPACE": "prod-nb",
            "NOTEBOOKS_K8S_PROXY_POD_LABELS": "app=proxy,tier=edge",
            "NOTEBOOKS_K8S_STORAGE_CLASS": "ssd",
            "NOTEBOOKS_K8S_RESYNC_SECONDS": "60",
        }
    )
    assert ks.namespace == "prod-nb"
    assert ks.proxy_pod_labels == {"app": "proxy", "tier": "edge"}
    assert ks.storage_class == "ssd"
    assert ks.resync_seconds == 60
    assert KubernetesSettings.from_env({}).storage_class is None


def test_the_scratch_cap_comes_from_the_environment() -> None:
    ks = KubernetesSettings.from_env({"NOTEBOOKS_K8S_SCRATCH_SIZE": "2Gi"})
    s = spec(mode="cluster", workers=2)
    pods = by_kind(objects.session_objects(s, ks), "Pod")
    env = env_of(objects.sail_pod(s, ks)["spec"]["containers"][0])
    pods.append(json.loads(env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"]))
    assert len(pods) == 3
    for pod in pods:
        (tmp,) = [v for v in pod["spec"]["volumes"] if v["name"] == "tmp"]
        assert tmp["emptyDir"] == {"sizeLimit": "2Gi"}
