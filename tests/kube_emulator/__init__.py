"""In-process Kubernetes API emulator (kmock-based) and a fake kubelet."""

from .emulator import KubeEmulator
from .helpers import Changes, eventually
from .kubelet import Kubelet

__all__ = ["Changes", "KubeEmulator", "Kubelet", "eventually"]
