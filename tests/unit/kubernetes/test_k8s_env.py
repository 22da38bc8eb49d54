"""A workload config's env on Kubernetes: the platform's Sail settings always
win (the worker cap above all), and every value reaches the process exactly
as the config says, through the kubelet's `$(NAME)`/`$$` expansion (once for
the Sail and Marimo pods, twice for a value inside the worker pod template
the driver hands to Sail)."""

from __future__ import annotations

import base64
import json
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubelet_expansion import expand, process_env
from sail_worker import DRIVER_IP, driver_env, sail_worker_pod

from common import platform_env
from reconciler.runtime.base import ResourceSpec, SessionSpec, WorkloadSpec
from reconciler.runtime.kubernetes import objects
from reconciler.runtime.kubernetes.pool import poolable, warm_pod
from reconciler.runtime.kubernetes.settings import KubernetesSettings

KS = KubernetesSettings(namespace="nbs", sail_image="reg/sail:1", marimo_image="reg/kernel:1")

# What a config might say, `$` in every position the kubelet treats specially.
TRICKY = {
    "PASSWORD": "pa$$word",
    "REF": "$(HOME)/x",
    "ESCAPED": "$$(HOME)",
    "DOLLAR": "cost: 5$",
    "PLAIN_DOLLAR": "a$b",
    "OPEN": "$(unclosed",
    "MANY": "$$$$(SAIL_MODE)$$$",
}

# Keys the platform owns, set by a config (a row written before the API
# refused them, or by another path).
HOSTILE = {
    "SAIL_MODE": "local-cluster",
    "SAIL_CLUSTER__WORKER_MAX_COUNT": "0",
    "SAIL_CLUSTER__WORKER_INITIAL_COUNT": "500",
    "SAIL_CLUSTER__DRIVER_EXTERNAL_HOST": "evil.example.com",
    "SAIL_KUBERNETES__NAMESPACE": "kube-system",
    "SAIL_KUBERNETES__WORKER_POD_TEMPLATE": "{}",
    "SAIL_KUBERNETES__WORKER_SERVICE_ACCOUNT_NAME": "notebooks-worker",
    "HOME": "/root",
    "SPARK_REMOTE": "sc://evil:1",
    "MARIMO_SKIP_UPDATE_CHECK": "0",
}


def spec(mode: str, env: dict[str, str], workers: int = 3) -> SessionSpec:
    return SessionSpec(
        "NB1",
        "S1",
        "tok",
        WorkloadSpec(mode=mode, workers=workers, env=env, sail=ResourceSpec(cpu="1")),
        "/notebooks/NB1",
    )


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def worker_container(driver: dict[str, Any]) -> dict[str, Any]:
    """The worker pod's container as Sail sends it (sail_worker.py)."""
    return container(sail_worker_pod(driver))


def test_the_kubelet_model_follows_the_documented_rule() -> None:
    defined = {"HOME": "/tmp"}
    assert expand("pa$$word", defined) == "pa$word"  # the defect: one `$` lost
    assert expand("$(HOME)/x", defined) == "/tmp/x"
    assert expand("$$(HOME)", defined) == "$(HOME)"
    assert expand("$(UNDEFINED)", defined) == "$(UNDEFINED)"
    assert expand("a$b", defined) == "a$b" and expand("5$", defined) == "5$"
    assert expand("$(unclosed", defined) == "$(unclosed"
    # only earlier variables are defined for a value
    env = process_env({"env": [{"name": "A", "value": "$(B)"}, {"name": "B", "value": "b"}]})
    assert env == {"A": "$(B)", "B": "b"}


def test_workers_caps_sail_on_kubernetes_not_only_starts_it() -> None:
    env = driver_env(objects.sail_pod(spec("cluster", {}, workers=3), KS))
    assert env["SAIL_CLUSTER__WORKER_INITIAL_COUNT"] == "3"
    assert env["SAIL_CLUSTER__WORKER_MAX_COUNT"] == "3"  # Sail's default, 0, is unlimited


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_the_platform_env_wins_over_the_config_on_every_pod(mode: str) -> None:
    s = spec(mode, {**HOSTILE, "AWS_REGION": "eu-west-1"}, workers=3)
    sail = objects.sail_pod(s, KS)
    marimo = objects.marimo_pod(s, KS)
    containers = [container(sail), container(marimo)]
    if mode == "cluster":
        containers.append(worker_container(sail))
    for c in containers:
        names = [e["name"] for e in c["env"]]
        assert len(names) == len(set(names)), names  # one value per name, no shadowing
        env = process_env(c, {"status.podIP": "10.9.9.9"})
        assert env["AWS_REGION"] == "eu-west-1"  # the config's own keys still arrive
        for key, value in HOSTILE.items():
            assert env.get(key) != value, (c["name"], key)
    sail_env = driver_env(sail)
    marimo_env = process_env(container(marimo))
    assert sail_env["HOME"] == marimo_env["HOME"] == "/tmp"
    assert marimo_env["SPARK_REMOTE"] == "sc://nb-nb1-sail.nbs.svc:50051"
    if mode == "standalone":
        # nothing of Sail's cluster settings at all: Sail's own default mode
        assert not [k for k in sail_env if k.startswith("SAIL_")]
    else:
        assert sail_env["SAIL_MODE"] == "kubernetes-cluster"
        assert sail_env["SAIL_CLUSTER__WORKER_MAX_COUNT"] == "3"
        assert sail_env["SAIL_CLUSTER__WORKER_INITIAL_COUNT"] == "3"
        assert sail_env["SAIL_CLUSTER__DRIVER_EXTERNAL_HOST"] == "10.1.2.3"  # its pod IP
        assert sail_env["SAIL_KUBERNETES__NAMESPACE"] == "nbs"
        assert sail_env["SAIL_KUBERNETES__WORKER_SERVICE_ACCOUNT_NAME"] == "default"
        template = json.loads(sail_env["SAIL_KUBERNETES__WORKER_POD_TEMPLATE"])
        assert template["metadata"]["labels"]["notebooks.example.com/notebook-id"] == "NB1"


def test_the_platform_keys_are_one_list_for_both_runtimes_and_the_api() -> None:
    from api import configs
    from reconciler.runtime import local

    assert local.user_env is objects.user_env is platform_env.user_env
    assert configs.platform_env_key is platform_env.platform_env_key
    for key in [*HOSTILE, "SAIL_CLUSTER__ANYTHING", "SAIL_KUBERNETES__ANYTHING", "sail_mode"]:
        assert platform_env.platform_env_key(key), key
        assert platform_env.user_env({key: "x"}) == {}, key
    for key in ("TZ", "AWS_REGION", "SAIL_SPARK__SOMETHING", "PATH"):
        assert not platform_env.platform_env_key(key), key
        assert platform_env.user_env({key: "x"}) == {key: "x"}, key


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_env_values_reach_every_process_exactly_as_configured(mode: str) -> None:
    s = spec(mode, TRICKY)
    sail = objects.sail_pod(s, KS)
    processes = {
        "sail": driver_env(sail),
        "marimo": process_env(container(objects.marimo_pod(s, KS))),
    }
    if mode == "cluster":
        # through two kubelets: the driver's (the template is part of its
        # env), then the worker's
        processes["worker"] = process_env(worker_container(sail), {"status.podIP": "10.9.9.9"})
    else:
        processes["warm sail"] = process_env(container(warm_pod(s.workload, KS, "abc123")))
    for name, env in processes.items():
        got = {k: env.get(k) for k in TRICKY}
        assert got == TRICKY, name


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_secret_env_reaches_every_process_through_the_sessions_secret_only(mode: str) -> None:
    """A config's `secretEnv` travels in the session's own Secret, taken with
    `envFrom` (never expanded, whatever `$` it holds) by Sail, Marimo and, in
    cluster mode, the workers Sail makes from the template; no value is in
    any pod's spec, and the platform's keys stay the platform's."""
    base = spec(mode, {"TZ": "UTC"})
    s = replace(base, workload=replace(base.workload, secret_env={**TRICKY, **HOSTILE}))
    objs = objects.session_objects(s, KS)
    secret = next(o for o in objs if o["metadata"]["name"] == "nb-nb1-s1-env")
    stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert stored == TRICKY  # the platform's keys dropped, as from env
    sail = objects.sail_pod(s, KS)
    pods = [sail, objects.marimo_pod(s, KS)]
    secrets = {"nb-nb1-s1-env": stored}
    processes = {
        "sail": process_env(container(sail), {"status.podIP": DRIVER_IP}, secrets),
        "marimo": process_env(container(pods[1]), secrets=secrets),
    }
    if mode == "cluster":
        worker = worker_container(sail)
        processes["worker"] = process_env(worker, {"status.podIP": "10.9.9.9"}, secrets)
        pods.append({"spec": {"containers": [worker]}})
    for name, env in processes.items():
        assert {k: env.get(k) for k in TRICKY} == TRICKY, name
        assert env["TZ"] == "UTC", name
        for key, value in HOSTILE.items():
            assert env.get(key) != value, (name, key)
    text = json.dumps(pods)
    for value in TRICKY.values():
        assert json.dumps(value)[1:-1] not in text and value not in text
    # Not pooled: a warm Sail cannot name a Secret of a session to come.
    assert not poolable(s.workload)
    assert poolable(base.workload) is (mode == "standalone")


def test_without_secret_env_there_is_no_secret_and_no_env_from() -> None:
    s = spec("standalone", {"TZ": "UTC"})
    assert not [o for o in objects.session_objects(s, KS) if o["metadata"]["name"].endswith("-env")]
    for pod in (objects.sail_pod(s, KS), objects.marimo_pod(s, KS)):
        assert "envFrom" not in container(pod)


def test_the_notebook_template_reaches_the_seed_container_unchanged() -> None:
    from reconciler.runtime.template import TEMPLATE

    seed = objects.marimo_pod(spec("standalone", {}), KS)["spec"]["initContainers"][0]
    assert process_env(seed)["NOTEBOOK_TEMPLATE"] == TEMPLATE


def test_the_seed_writes_the_notebook_file_whole_or_not_at_all(tmp_path: Path) -> None:
    """A seed cut short (here: a volume with room for 100 bytes) must not leave
    a truncated notebook file, which every later seed would keep (it
    exists) and Marimo would open. Run as the pod runs it: `python -c`."""
    from reconciler.runtime.template import TEMPLATE

    seed = objects.marimo_pod(spec("standalone", {}), KS)["spec"]["initContainers"][0]
    path = tmp_path / "notebook.py"
    command = [sys.executable, *seed["command"][1:-1], str(path)]
    env = {"NOTEBOOK_TEMPLATE": TEMPLATE}

    def full_volume() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    cut = subprocess.run(command, env=env, preexec_fn=full_volume, capture_output=True)
    assert cut.returncode != 0 and b"File too large" in cut.stderr
    assert not path.exists()
    assert subprocess.run(command, env=env).returncode == 0  # the next start
    assert path.read_text() == TEMPLATE
    path.write_text("edited")
    assert subprocess.run(command, env=env).returncode == 0  # a later start keeps it
    assert path.read_text() == "edited"
