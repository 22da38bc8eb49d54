"""The contract every runtime backend satisfies: observe, ensure running,
ensure stopped, delete, and the list of what it runs (for the sweep's orphan
check). All idempotent; reads never have effects. What to do is decided by
the pure `plan()`, never here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class TerminalError(Exception):
    """Retrying cannot help (a missing binary, a bad spec): the notebook goes
    to `failed` with this message as the reason. Any other exception from a
    backend is treated as transient and retried with backoff."""


class Phase(StrEnum):
    """What one component (Sail or Marimo) of a notebook is doing right now."""

    ABSENT = "absent"  # nothing there
    STARTING = "starting"  # exists, not yet healthy
    READY = "ready"  # answers its health check
    FAILED = "failed"  # exited / crash-looping / unschedulable: `detail` says why


@dataclass(frozen=True)
class Component:
    phase: Phase
    detail: str = ""  # the real reason on failure: exit code, last log lines, pod reason
    terminal: bool = False  # retrying cannot help (image pull error, bad config)
    terminating: bool = False  # being torn down by the runtime (a pod past its deletion)
    # Ended while its spawner is gone too (the platform itself was down: a
    # host restart, the whole stack killed), so why is not known: a start
    # restarts it within its deadline rather than failing on it. Not when
    # another worker spawned it and still runs: that one saw a failure.
    unwatched: bool = False
    # What a starting component waits for that the member should read in the
    # status message (a node for its pod); "" when it is just starting.
    waiting_for: str = ""


ABSENT = Component(Phase.ABSENT)


@dataclass(frozen=True)
class ResourceSpec:
    image: str = ""
    cpu: str = ""
    memory: str = ""


@dataclass(frozen=True)
class WorkloadSpec:
    """The parts of a workload config a runtime needs."""

    mode: str = "standalone"  # standalone | cluster
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    # Passed as `env` is, and never shown (migration 0020); on Kubernetes
    # through the session's own Secret, not the pod spec.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    sail: ResourceSpec = ResourceSpec()
    marimo: ResourceSpec = ResourceSpec()
    node_selector: dict[str, str] = field(default_factory=dict)


def shape_digest(key: dict[str, object]) -> str:
    """A warm pool's shape: what its pre-started Sails depend on, as a short digest."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionSpec:
    """One start of one notebook: everything a backend needs to provision it."""

    notebook_id: str
    session_id: str
    # Marimo's token; only the proxy learns it (never in a repr: a log or a
    # test's failure prints one)
    session_token: str = field(repr=False)
    workload: WorkloadSpec
    base_url: str  # "/notebooks/{id}/" without the trailing slash for Marimo's --base-url
    # The notebook's first file when it has none yet (it was created from a
    # file its member brought, or its storage was lost); None: the platform's
    # template.
    seed: str | None = None
    # A restore (docs/api.md "Restoring a version"): `seed` goes over the
    # file there too, once per session; a file whose SHA-256 (hex) is none
    # of these (space-separated) holds edits no kept copy has and is kept
    # beside it (reconciler/runtime/seeding.py).
    seed_replaces: str | None = None


@dataclass(frozen=True)
class Observation:
    """What really runs for a notebook, as the backend sees it now."""

    session_id: str | None  # the session the running components belong to
    sail: Component = ABSENT
    marimo: Component = ABSENT
    marimo_url: str | None = None  # where the proxy reaches Marimo (http://host:port)
    sail_url: str | None = None  # sc://host:port
    # The kernel is running a cell right now; None: unknown (the runtime could
    # not tell), which `plan` never takes for idle.
    executing: bool | None = False
    runtime_state: dict[str, object] = field(default_factory=dict)  # persisted handle
    # Something may run that the runtime could not record (a worker killed
    # right after spawning it): only a teardown or a start finds it.
    untracked: bool = False

    @property
    def nothing_left(self) -> bool:
        absent = self.sail.phase is Phase.ABSENT and self.marimo.phase is Phase.ABSENT
        return absent and not self.untracked


@dataclass(frozen=True)
class LogTail:
    """The last part of one component's output, or why none was read."""

    data: bytes | None
    problem: str = ""


class Runtime(Protocol):
    async def observe(self, notebook_id: str) -> Observation: ...

    async def ensure_running(self, spec: SessionSpec) -> Observation:
        """Create whatever of `spec` is missing (adopting what already runs for
        the same session); returns at once, without waiting for readiness."""
        ...

    async def ensure_stopped(self, notebook_id: str) -> None:
        """Tear down Sail and Marimo (graceful, then forced); keep the notebook file."""
        ...

    async def read_file(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> bytes | None:
        """The notebook's file as it is saved now: at most `max_bytes` + 1
        bytes (more than `max_bytes`: too large to keep whole), or None when
        it cannot be read now (there is none yet; on Kubernetes, no ready
        Marimo in `observed` to serve it). A read, no effects."""
        ...

    async def read_logs(
        self, notebook_id: str, observed: Observation, max_bytes: int
    ) -> dict[str, LogTail]:
        """The last `max_bytes` (or more) of the output of `observed`'s
        session's Sail and Marimo, by component (`sail`, `marimo`), each with
        the reason when it cannot be read (no pod yet). A read, no effects."""
        ...

    async def delete(self, notebook_id: str) -> None:
        """Stop and remove everything, the notebook's storage included."""
        ...

    async def active_ids(self) -> set[str]:
        """The notebooks this runtime has something running (or recorded as
        running) for, whatever the database says; a read, no effects. The
        sweep enqueues a reconcile for those that have no row, and that pass
        removes them (`delete`). Storage alone is not listed."""
        ...

    async def close(self) -> None: ...
