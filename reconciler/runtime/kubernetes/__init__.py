"""The `kubernetes` runtime backend (see docs/kubernetes.md)."""

from reconciler.runtime.kubernetes.runtime import KubernetesRuntime, observation_of
from reconciler.runtime.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesRuntime", "KubernetesSettings", "observation_of"]
