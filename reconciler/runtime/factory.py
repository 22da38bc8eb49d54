"""Choose the runtime backend from the settings."""

from __future__ import annotations

import importlib
from typing import Any

from common.settings import Settings
from reconciler.runtime.base import Runtime
from reconciler.runtime.local import LocalRuntime


def make_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "local":
        return LocalRuntime(
            settings.data_dir,
            stop_grace_seconds=settings.stop_grace_seconds,
            warm_pool_size=settings.local_warm_pool_size,
        )
    if settings.runtime == "kubernetes":
        # Imported lazily: the kubernetes client is heavy and unused locally.
        mod: Any = importlib.import_module("reconciler.runtime.kubernetes")
        cls = mod.KubernetesRuntime
        if hasattr(cls, "from_settings"):
            return cls.from_settings(settings)  # type: ignore[no-any-return]
        return cls(settings)  # type: ignore[no-any-return]
    raise ValueError(f"unknown runtime {settings.runtime!r}")
