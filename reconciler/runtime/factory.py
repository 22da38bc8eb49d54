"""Choose the runtime backend from the settings."""

from __future__ import annotations

from common.clock import Clock
from common.settings import Settings
from reconciler.runtime.base import Runtime
from reconciler.runtime.local import LocalRuntime


def make_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """`clock`: what the runtime judges ages and deadlines by (default the system's)."""
    if settings.runtime == "local":
        return LocalRuntime(
            settings.data_dir,
            stop_grace_seconds=settings.stop_grace_seconds,
            warm_pool_size=settings.local_warm_pool_size,
            clock=clock,
        )
    if settings.runtime == "kubernetes":
        # Imported lazily: the kubernetes client is heavy and unused locally.
        from reconciler.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime.from_settings(settings, clock=clock)
    raise ValueError(f"unknown runtime {settings.runtime!r}")
