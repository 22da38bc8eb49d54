"""Notebook statuses and desired states (DESIGN §4), shared by every process."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    DETACHED = "detached"
    STOPPING = "stopping"
    FAILED = "failed"


class Desired(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    DELETED = "deleted"


# Where each member-facing action is allowed (anything else is a 409).
STARTABLE = frozenset({Status.STOPPED, Status.FAILED})
STOPPABLE = frozenset({Status.STARTING, Status.RUNNING, Status.IDLE, Status.DETACHED})
PROVISIONED = frozenset({Status.RUNNING, Status.IDLE, Status.DETACHED})  # open, ping
CONFIG_CHANGEABLE = frozenset({Status.STOPPED, Status.FAILED})
# While its servers are held: what the organization's usage counts (api/usage.py).
HOLDS_SERVERS = frozenset(
    {Status.STARTING, Status.RUNNING, Status.IDLE, Status.DETACHED, Status.STOPPING}
)

# The actor of what the workers observed and did, in the history.
RECONCILER_ACTOR = "reconciler"

# The status message of a stop a member asked for: said while `stopping`,
# not kept once `stopped` (it read as still pending); an automatic stop's
# reason ("idle for 1 h") is kept, since it says why the notebook stopped.
STOP_REQUESTED = "Stop requested"

# How long a member's Stop leaves an open editor to save what was typed last:
# Marimo's editor saves 1 s after the last keystroke, and only while its
# socket is open. The proxy keeps edit sessions through it (proxy/live.py);
# the worker stops Marimo after it when a member was present (reconciler/plan.py).
SAVE_WINDOW_SECONDS = 2.5
# A stop stamped further ahead of a reader's clock than this gets no window
# from it: the stamp carries whichever writer's clock ran fastest (status.sql
# never lets history run backwards), and a window counted from a stamp an hour
# ahead would keep Marimo, and an editor's connection, for that hour.
SAVE_WINDOW_CLOCK_TOLERANCE_SECONDS = 1.0
