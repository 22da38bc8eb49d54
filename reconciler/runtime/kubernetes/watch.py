"""Pod watch: every change to a managed pod announces its notebook.

List, then watch from the list's resourceVersion; a watch that ends (server
timeout) or breaks (connection dropped, API error) is re-opened from the last
resourceVersion seen; 410 Gone (history compacted) means relist. Every relist
(at start, after 410, and every `resync_seconds`) announces every notebook
seen, including those whose pods vanished while nobody watched, so a missed
event costs latency, never correctness (the sweep is the last net).

Never a tight loop against the API server: a break waits its back-off (never
0, with jitter), and the failure count that picks it is reset only by an
event that is not an ERROR, so a server answering every watch with an ERROR
event backs off as one refusing the request does (and so does a 410 Gone met
by a watch from the resourceVersion a list has just given: relisting at once
would only meet it again). Every RELIST_AFTER_FAILURES consecutive failures,
and after an ERROR saying the resourceVersion is ahead of the server's cache
(504, "Too large resource version": client-go's reflector relists then too),
the next attempt lists first. A watch that ends cleanly with no event at all
(a proxy cutting it, a server misbehaving) is re-opened only after
EMPTY_STREAM_WAIT_SECONDS. Every wait is on the injected clock
(`common.clock.sleeper`), so tests move time instead of waiting for it.

The official client is synchronous: each watch request runs in a daemon
thread that feeds lines to the event loop; stopping closes its socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from common.clock import Clock, SystemClock, sleeper
from reconciler.runtime.kubernetes import names as n

log = structlog.get_logger(__name__)

OnChange = Callable[[str], Awaitable[None]]

# Consecutive failures (lists, watch requests, ERROR events) after which the
# next attempt relists rather than resuming: whatever keeps failing may be
# the resourceVersion we resume from.
RELIST_AFTER_FAILURES = 3
# A watch that ended with no event at all (not even the server's closing
# bookmark) is re-opened after this, never at once.
EMPTY_STREAM_WAIT_SECONDS = 1.0
# Every wait is stretched by up to this fraction at random, so the workers a
# restarted API server dropped all at once do not come back all at once.
JITTER = 0.5


class WatchGone(Exception):
    """The resourceVersion we resume from is no longer in the server's history."""


class WatchError(Exception):
    """An ERROR event other than 410 in the stream; `relist`: the server says
    our resourceVersion is ahead of what it can serve (504, "Too large
    resource version"), which only a fresh list gets past."""

    def __init__(self, code: object, message: str) -> None:
        super().__init__(f"watch error: {code} {message}")
        self.code = code
        self.relist = code == 504 or "too large resource version" in message.lower()


class PodWatcher:
    def __init__(
        self,
        api: Any,  # KubeApi (typed loosely to keep this module free of the client's types)
        label_selector: str,
        *,
        watch_timeout_seconds: int,
        resync_seconds: float,
        backoff: tuple[float, ...],
        clock: Clock | None = None,
    ) -> None:
        self._api = api
        self._clock = clock or SystemClock()  # times the resync (monotonic)
        self._selector = label_selector
        self._watch_timeout = watch_timeout_seconds
        self._resync = resync_seconds
        if not backoff or min(backoff) <= 0:
            # A zero wait is how a watch hammers a failing API server.
            raise ValueError(f"watch back-off must be positive: {backoff!r}")
        self._backoff = backoff
        self._sleep = sleeper(self._clock)
        self._random = random.random
        self._known: set[str] = set()
        self._responses: set[Any] = set()
        self._stopped = False
        # Counters tests and metrics read.
        self.lists = 0
        self.watches = 0
        self.breaks = 0
        self.resource_version: str | None = None
        # When the last list was (the clock's monotonic seconds); kept across
        # runs, as the resourceVersion is: a run resumes from both.
        self._listed_at: float | None = None

    def _resync_due(self) -> bool:
        if self._listed_at is None:
            return True
        return self._clock.monotonic() - self._listed_at >= self._resync

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + JITTER * self._random())

    def stop(self) -> None:
        self._stopped = True
        for resp in list(self._responses):
            _shutdown(resp)

    async def run(self, on_change: OnChange) -> None:
        failures = 0  # consecutive, until an event that is not an ERROR
        self._stopped = False
        while not self._stopped:
            listed, events = False, 0
            try:
                if self.resource_version is None or self._resync_due():
                    self.resource_version = await self._relist(on_change)
                    self._listed_at = self._clock.monotonic()
                    listed = True
                async for event in self._stream(self.resource_version):
                    await self._handle(event, on_change)  # raises on an ERROR event
                    events += 1
                    failures = 0
                if events == 0:
                    # Ended cleanly with nothing, not even a bookmark: do not
                    # ask again at once (a proxy or server ending every watch
                    # at once would otherwise be asked in a tight loop).
                    delay = self._jittered(EMPTY_STREAM_WAIT_SECONDS)
                    log.info(
                        "k8s_watch_empty", resource_version=self.resource_version, retry_in=delay
                    )
                    await self._sleep(delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken watch or list: resume after a pause
                if isinstance(exc, WatchGone) or (
                    isinstance(exc, ApiException) and exc.status == 410
                ):
                    # History compacted past our resourceVersion (an ERROR
                    # event, or the request's own status): relist now, not at
                    # the next resync; unless the version is one a list just
                    # gave, which a relist at once would only meet again.
                    log.info("k8s_watch_gone", resource_version=self.resource_version)
                    self.resource_version = None
                    if not (listed and events == 0):
                        continue
                self.breaks += 1
                failures += 1
                relist = failures % RELIST_AFTER_FAILURES == 0 or (
                    isinstance(exc, WatchError) and exc.relist
                )
                delay = self._jittered(self._backoff[min(failures, len(self._backoff)) - 1])
                log.warning(
                    "k8s_watch_broken",
                    error=repr(exc)[:300],
                    resource_version=self.resource_version,
                    failures=failures,
                    relist=relist,
                    retry_in=delay,
                )
                if relist:
                    self.resource_version = None
                await self._sleep(delay)

    async def _relist(self, on_change: OnChange) -> str:
        resp = await asyncio.to_thread(
            self._api.core.list_namespaced_pod,
            self._api.namespace,
            label_selector=self._selector,
            _request_timeout=self._api.timeout,
            _preload_content=False,
        )
        body = json.loads(resp.data)
        self.lists += 1
        now = {
            nid
            for pod in body.get("items") or []
            if (nid := (pod["metadata"].get("labels") or {}).get(n.NOTEBOOK))
        }
        for nid in sorted(now | self._known):
            await _announce(on_change, nid)
        self._known = now
        return str(body["metadata"]["resourceVersion"])

    async def _handle(self, event: dict[str, Any], on_change: OnChange) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchGone(obj.get("message", ""))
            raise WatchError(obj.get("code"), str(obj.get("message") or ""))
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self.resource_version = str(meta["resourceVersion"])
        if kind == "BOOKMARK":
            return
        nid = (meta.get("labels") or {}).get(n.NOTEBOOK)
        if nid:
            self._known.add(nid)
            await _announce(on_change, nid)

    async def _stream(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """One watch request: yields decoded events until the server ends it.
        Raises what broke it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        holder: dict[str, Any] = {}

        def put(item: tuple[str, Any]) -> None:
            # RuntimeError: the loop is gone; nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                resp = self._api.core.list_namespaced_pod(
                    self._api.namespace,
                    label_selector=self._selector,
                    watch=True,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=self._watch_timeout,
                    _preload_content=False,
                    # Read timeout beyond the server's own: a silent half-open
                    # connection is noticed, never waited on forever.
                    _request_timeout=(self._api.timeout, self._watch_timeout + 30),
                )
                holder["resp"] = resp
                self._responses.add(resp)
                if self._stopped or holder.get("abandoned"):
                    _shutdown(resp)  # nobody reads this stream any more
                for line in iter_resp_lines(resp):
                    if line:
                        put(("line", line))
                holder["clean"] = True
                put(("end", None))
            except BaseException as exc:  # handed to the loop, raised there
                put(("error", exc))
            finally:
                resp = holder.get("resp")
                if resp is not None:
                    self._responses.discard(resp)
                    if not holder.get("clean"):
                        resp.close()  # never hand a half-read connection back to the pool
                    resp.release_conn()

        self.watches += 1
        threading.Thread(target=pump, name="k8s-pod-watch", daemon=True).start()
        try:
            while True:
                what, value = await queue.get()
                if what == "end":
                    return
                if what == "error":
                    raise value
                yield json.loads(value)
        finally:
            # Cancelled or done: end the thread's request now (or as soon as
            # it has one), not at the server's timeout.
            holder["abandoned"] = True
            if "resp" in holder:
                _shutdown(holder["resp"])


async def _announce(on_change: OnChange, notebook_id: str) -> None:
    try:
        await on_change(notebook_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one failed enqueue must not end the watch
        log.warning("k8s_watch_on_change_failed", notebook_id=notebook_id, error=repr(exc))


def _shutdown(resp: Any) -> None:
    """Unblock a thread reading this response (the client's Watch.stop trick)."""
    try:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
