"""The local runtime's child environments: the platform's Sail settings win
over a workload config's env in every mode (the same rule and keys as the
kubernetes runtime, tests/unit/kubernetes/test_k8s_env.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.runtime.base import SessionSpec, WorkloadSpec
from reconciler.runtime.local import LocalRuntime

HOSTILE = {
    "SAIL_MODE": "kubernetes-cluster",
    "SAIL_CLUSTER__WORKER_MAX_COUNT": "0",
    "SAIL_CLUSTER__WORKER_INITIAL_COUNT": "500",
    "SAIL_KUBERNETES__NAMESPACE": "kube-system",
    "SPARK_REMOTE": "sc://evil:1",
    "HOME": "/root",
}


def spec(mode: str, env: dict[str, str], workers: int = 2) -> SessionSpec:
    return SessionSpec("NB1", "S1", "tok", WorkloadSpec(mode=mode, workers=workers, env=env), "/b")


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_the_platform_sail_settings_win_over_the_config(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/stack")
    rt = LocalRuntime(tmp_path)
    s = spec(mode, {**HOSTILE, "TZ": "UTC"})
    env = rt._env(s)
    sail = rt._sail_env(s, env)
    assert sail["TZ"] == env["TZ"] == "UTC"  # the config's own keys still arrive
    assert env["HOME"] == sail["HOME"] == "/home/stack"
    for key, value in HOSTILE.items():
        assert sail.get(key) != value, key
        assert env.get(key) != value, key  # Marimo's env is `env` plus our SPARK_REMOTE
    if mode == "standalone":
        assert not [k for k in sail if k.startswith("SAIL_")]  # Sail's default: local
    else:
        assert sail["SAIL_MODE"] == "local-cluster"
        assert sail["SAIL_CLUSTER__WORKER_INITIAL_COUNT"] == "2"
        assert sail["SAIL_CLUSTER__WORKER_MAX_COUNT"] == "2"


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_the_secret_env_arrives_as_env_does_and_claims_no_platform_key(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/stack")
    rt = LocalRuntime(tmp_path)
    workload = WorkloadSpec(
        mode=mode, env={"TZ": "UTC"}, secret_env={**HOSTILE, "DB_PASSWORD": "pa$$word"}
    )
    s = SessionSpec("NB1", "S1", "tok", workload, "/b")
    env = rt._env(s)
    sail = rt._sail_env(s, env)
    assert env["DB_PASSWORD"] == sail["DB_PASSWORD"] == "pa$$word"
    assert env["TZ"] == "UTC"
    for key, value in HOSTILE.items():
        assert sail.get(key) != value, key
        assert env.get(key) != value, key
