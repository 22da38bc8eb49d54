"""In-process Kubernetes API emulator (kmock-based) and a fake kubelet."""

from .emulator import KubeEmulator
from .kubelet import Kubelet

__all__ = ["KubeEmulator", "Kubelet"]
