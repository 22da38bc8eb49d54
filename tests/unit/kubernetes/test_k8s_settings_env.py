"""NOTEBOOKS_K8S_* settings: a malformed value is refused with one line
naming the variable, before the worker connects anywhere (docs/operations.md,
"Settings"), never read as the default or turned into a spinning loop."""

from __future__ import annotations

import pytest

import reconciler.worker
from cli.main import main
from common.settings import SettingsError
from reconciler.runtime.kubernetes.settings import KubernetesSettings, KubernetesSettingsError

BAD = [
    ("RUN_AS_USER", "abc"),
    ("RUN_AS_USER", "0"),  # pods say runAsNonRoot
    ("RUN_AS_USER", "-1"),
    ("RUN_AS_USER", "1.5"),
    ("WATCH_TIMEOUT_SECONDS", "0"),
    ("WATCH_TIMEOUT_SECONDS", "five"),
    ("RESYNC_SECONDS", "0"),
    ("RESYNC_SECONDS", "-60"),
    ("REQUEST_TIMEOUT_SECONDS", "0"),
    ("REQUEST_TIMEOUT_SECONDS", "-1"),
    ("REQUEST_TIMEOUT_SECONDS", "nan"),
    ("REQUEST_TIMEOUT_SECONDS", "inf"),
    ("REQUEST_TIMEOUT_SECONDS", "30s"),
    ("WARM_POOL_SIZE", "-3"),
    ("WARM_POOL_SIZE", "two"),
    ("EXTRA_POD_LABELS", "team=data"),
    ("EXTRA_POD_LABELS", '["team"]'),
    ("EXTRA_POD_LABELS", '{"replicas": 2}'),
    ("PROXY_POD_LABELS", "app"),
    ("WORKER_POD_LABELS", "=notebooks-worker"),
    ("IMAGE_PULL_POLICY", "ifnotpresent"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(KubernetesSettingsError) as err:
        KubernetesSettings.from_env({f"NOTEBOOKS_K8S_{name}": value})
    message = str(err.value)
    assert isinstance(err.value, SettingsError)  # what cli/main.py prints as one line
    assert message.startswith(f"NOTEBOOKS_K8S_{name} must be "), message
    assert repr(value) in message and "\n" not in message


def test_the_smallest_values_that_make_sense_are_accepted() -> None:
    ks = KubernetesSettings.from_env(
        {
            "NOTEBOOKS_K8S_RUN_AS_USER": "1",
            "NOTEBOOKS_K8S_WATCH_TIMEOUT_SECONDS": "1",
            "NOTEBOOKS_K8S_RESYNC_SECONDS": "1",
            "NOTEBOOKS_K8S_REQUEST_TIMEOUT_SECONDS": "0.5",
            "NOTEBOOKS_K8S_WARM_POOL_SIZE": "0",
            "NOTEBOOKS_K8S_EXTRA_POD_LABELS": '{"team": "data"}',
            "NOTEBOOKS_K8S_IMAGE_PULL_POLICY": "Always",
        }
    )
    assert (ks.run_as_user, ks.watch_timeout_seconds, ks.resync_seconds) == (1, 1, 1)
    assert ks.request_timeout_seconds == 0.5 and ks.warm_pool_size == 0
    assert ks.extra_pod_labels == {"team": "data"} and ks.image_pull_policy == "Always"


def test_empty_values_are_the_defaults() -> None:
    names = ("RUN_AS_USER", "RESYNC_SECONDS", "REQUEST_TIMEOUT_SECONDS", "WARM_POOL_SIZE")
    env = {f"NOTEBOOKS_K8S_{name}": "" for name in names}
    env["NOTEBOOKS_K8S_EXTRA_POD_LABELS"] = ""
    assert KubernetesSettings.from_env(env) == KubernetesSettings()


def test_the_worker_reports_a_bad_value_in_one_line_before_opening_the_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def open_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("the database pool opened before the runtime's settings were read")

    monkeypatch.setattr(reconciler.worker, "open_pool", open_pool)
    for name, value in {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "NOTEBOOKS_SECRET_KEY": "k" * 32,
        "NOTEBOOKS_SIGNING_KEYS": "main:" + "s" * 32,
        "NOTEBOOKS_RUNTIME": "kubernetes",
        "NOTEBOOKS_LOG_FORMAT": "json",
        "NOTEBOOKS_K8S_RUN_AS_USER": "abc",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--metrics-port", "off"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "notebooks worker: error: NOTEBOOKS_K8S_RUN_AS_USER must be an integer of at least 1,"
        " got 'abc'\n"
    )
