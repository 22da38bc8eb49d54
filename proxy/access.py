"""Who may reach which notebook's Marimo, looked up in Postgres and cached.

The cache is keyed by (member, notebook, API token) and dropped on NOTIFY from the
triggers of migration 0003; a short TTL bounds staleness even if the LISTEN
connection is down (it reconnects in the background)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, cast

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from common.clock import Clock, SystemClock, monotonic_reader
from common.settings import Settings
from common.statuses import SAVE_WINDOW_CLOCK_TOLERANCE_SECONDS, SAVE_WINDOW_SECONDS
from sql import query

# The setting's default (the proxy passes the setting itself).
PRESENCE_WINDOW = timedelta(seconds=Settings.presence_window_seconds)

log = structlog.get_logger("proxy.access")

SERVING = frozenset({"running", "idle", "detached"})
SAVE_WINDOW = timedelta(seconds=SAVE_WINDOW_SECONDS)
SAVE_WINDOW_CLOCK_TOLERANCE = timedelta(seconds=SAVE_WINDOW_CLOCK_TOLERANCE_SECONDS)
MANAGING_TEAM_ROLES = frozenset({"admin", "editor"})


class Principal(Protocol):
    """Who asks: a proxy session (cookie) or the login token's claims."""

    @property
    def member_id(self) -> str: ...

    @property
    def token_id(self) -> str: ...


@dataclass(frozen=True)
class Target:
    notebook_id: str
    status: str
    session_id: str | None
    session_token: str | None
    marimo_url: str | None
    can_view: bool
    can_edit: bool
    token_expires_at: datetime | None = None  # the API token's, when it has one
    # The notebook file's path as its Marimo knows it (the runtime records
    # it): what a viewer's `X-Notebook-Id` is pinned to (proxy/headers.py).
    notebook_path: str | None = None
    # For a member other than the owner: until when the owner counts as
    # present (their last ping + the presence window). An edit session
    # yields to them meanwhile (live.refusal), as `open` gives `view`.
    owner_present_until: datetime | None = None
    # A stop under way (`stopping`): until when an open editor may still save
    # what was typed last (common/statuses.py SAVE_WINDOW_SECONDS from the
    # status change; the worker stops Marimo after it). None otherwise.
    saving_until: datetime | None = None
    # When it was read from the database, on the proxy's monotonic clock
    # (`Clock.monotonic`: a step of the wall clock must not make a read look
    # newer or older). Not part of the access it describes: an equal access
    # read again compares equal.
    checked_at: float | None = field(default=None, compare=False)

    def token_expired(self, now: datetime) -> bool:
        return self.token_expires_at is not None and now >= self.token_expires_at

    def owner_present(self, now: datetime) -> bool:
        return self.owner_present_until is not None and now < self.owner_present_until

    @property
    def serving(self) -> bool:
        return self.status in SERVING and bool(self.marimo_url) and bool(self.session_token)

    def saving(self, now: datetime) -> bool:
        """Stopping, within the window an open editor has to save in. A stop
        stamped by a clock well ahead of this one opens no window (it would
        last as far ahead as that clock ran)."""
        if self.saving_until is None or now >= self.saving_until:
            return False
        if now < self.saving_until - SAVE_WINDOW - SAVE_WINDOW_CLOCK_TOLERANCE:
            return False
        return bool(self.marimo_url) and bool(self.session_token)


def target_from_row(
    row: dict[str, object],
    checked_at: float | None = None,
    presence_window: timedelta = PRESENCE_WINDOW,
) -> Target:
    roles = set(row["team_roles"] or [])  # type: ignore[call-overload]
    owner_seen_at = cast(datetime | None, row.get("owner_seen_at"))
    changed_at = cast(datetime | None, row.get("status_changed_at"))
    stopping = row["status"] == "stopping" and changed_at is not None
    member_ok = bool(row["member_ok"])
    owner_or_admin = member_ok and (bool(row["is_owner"]) or bool(row["is_org_admin"]))
    return Target(
        notebook_id=str(row["notebook_id"]),
        status=str(row["status"]),
        session_id=row["session_id"],  # type: ignore[arg-type]
        session_token=row["session_token"],  # type: ignore[arg-type]
        marimo_url=row["marimo_url"],  # type: ignore[arg-type]
        can_view=owner_or_admin or (member_ok and bool(roles)),
        can_edit=owner_or_admin or (member_ok and bool(roles & MANAGING_TEAM_ROLES)),
        token_expires_at=row.get("token_expires_at"),  # type: ignore[arg-type]
        notebook_path=row.get("notebook_path"),  # type: ignore[arg-type]
        owner_present_until=owner_seen_at and owner_seen_at + presence_window,
        saving_until=changed_at + SAVE_WINDOW if stopping and changed_at else None,
        checked_at=checked_at,
    )


# What an entry is cached under: (member, notebook, API token).
Key = tuple[str, str, str]


class AccessCache:
    """Targets keyed by (member, notebook, API token): the token is part of
    the key because a revoked token ends only what it opened."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        ttl: float = 5.0,
        clock: Clock | None = None,
        presence_window: timedelta = PRESENCE_WINDOW,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._presence_window = presence_window  # Settings.presence_window_seconds
        # Entries' age (the TTL) and reads' time (Target.checked_at).
        self._monotonic = monotonic_reader(clock or SystemClock())
        self._entries: dict[Key, tuple[float, Target | None]] = {}
        # Counts invalidations: a lookup that one overtook (its snapshot
        # taken before the change, its answer back after the NOTIFY) is not
        # cached, or the express lane would admit on it for a whole TTL.
        self._epoch = 0

    @staticmethod
    def key(who: Principal, notebook_id: str) -> Key:
        """What an entry is cached under, and what one lookup answers for."""
        return (who.member_id, notebook_id, who.token_id)

    async def lookup(
        self, who: Principal, notebook_id: str, *, fresh: bool = False
    ) -> Target | None:
        key = self.key(who, notebook_id)
        if not fresh:
            found, target = self.peek(who, notebook_id)
            if found:
                return target
        return (await self.refresh([key]))[key]

    async def refresh(self, keys: Collection[Key]) -> dict[Key, Target | None]:
        """Every key looked up afresh in one statement (a request's one key,
        or a re-check pass's all: one lookup per key would queue thousands on
        the small pool) and cached; None for a key whose notebook is gone.
        A lookup an invalidation overtook is made once more, and its second
        answer, if overtaken too, is returned but not cached."""
        epoch = self._epoch
        targets = await self._select(keys)
        if self._epoch != epoch:  # overtaken: its snapshot may predate the change
            epoch = self._epoch
            targets = await self._select(keys)
        if self._epoch == epoch:
            stamp = self._monotonic()
            for key, target in targets.items():
                self._entries[key] = (stamp, target)
        return targets

    async def _select(self, keys: Collection[Key]) -> dict[Key, Target | None]:
        async with self._pool.connection() as conn:
            checked_at = self._monotonic()  # the answer is at least this fresh
            cur = await conn.execute(
                query("proxy_targets"),
                {
                    "member_ids": [k[0] for k in keys],
                    "notebook_ids": [k[1] for k in keys],
                    "token_ids": [k[2] for k in keys],
                },
            )
            rows = cast(list[dict[str, object]], await cur.fetchall())  # dict_row pool
        found = {
            (str(r["key_member_id"]), str(r["key_notebook_id"]), str(r["key_token_id"])): (
                target_from_row(r, checked_at, self._presence_window)
            )
            for r in rows
        }
        return {key: found.get(key) for key in keys}

    def peek(self, who: Principal, notebook_id: str) -> tuple[bool, Target | None]:
        """(True, target) when a fresh entry is cached: the express lane's
        way to decide without awaiting."""
        hit = self._entries.get(self.key(who, notebook_id))
        if hit is not None and self._monotonic() - hit[0] < self._ttl:
            return True, hit[1]
        return False, None

    def invalidate(self, payload: str) -> None:
        self._epoch += 1
        kind, _, ident = payload.partition(":")
        index = 1 if kind == "notebook" else 0 if kind == "member" else None
        if index is None:
            self._entries.clear()
            return
        for key in [k for k in self._entries if k[index] == ident]:
            del self._entries[key]


async def listen(
    dsn: str, on_notify: Callable[[str], Awaitable[None]], ready: asyncio.Event | None = None
) -> None:
    """Follow NOTIFY notebooks_proxy forever, reconnecting after failures.
    After a reconnect `on_notify('*')` runs, since changes may have been missed."""
    first = True
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(query("proxy_listen"))  # type: ignore[arg-type]
                if not first:
                    await on_notify("*")
                first = False
                if ready is not None:
                    ready.set()
                async for note in conn.notifies():
                    await on_notify(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: log, back off, retry
            log.warning("proxy.listen_failed", error=str(exc))
            await asyncio.sleep(1.0)
