"""A stateful Kubernetes API server for tests, built on kmock's HTTP plumbing
and request parsing (kmock.KubernetesScaffold), speaking the real REST
protocol to the official client.

kmock 0.8's own KubernetesEmulator serves CRUD but no resourceVersions, no
label selectors and no watch events the client can read; this one keeps a
store with a global resourceVersion counter, an event history, label
selectors, and watch streams (resume from a resourceVersion, 410 Gone once
the history is compacted, server-side `timeoutSeconds`), plus test knobs:
drop every open watch mid-stream, compact the history, fail the next N
requests of a kind, refuse creates (a quota, RBAC or an admission webhook)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.k8s import KubernetesError

from common.clock import Clock, SystemClock

from . import selectors

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace, name


@attrs.frozen
class ApiError(KubernetesError):
    """Rendered by kmock as a Kubernetes `Status` body with this code/reason."""

    status: int = 500
    reason: str = "InternalError"
    message: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)


@dataclass(eq=False)
class _Watch:
    group: str
    plural: str
    namespace: str | None
    match: selectors.Match
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@dataclass(frozen=True)
class Call:
    action: str
    plural: str
    params: dict[str, str]
    group: str = ""  # "" is the core API group


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 JSON merge patch (the emulator's stand-in for strategic merge)."""
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_DROP = object()


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesScaffold):
    history_limit: int = 1000
    # The API server's clock (creationTimestamp, deletionTimestamp): a test
    # gives the runtime the same one, and ages pods by advancing it.
    clock: Clock = attrs.field(factory=SystemClock)
    # Pods, as on a real cluster, only get a deletionTimestamp on DELETE; the
    # kubelet removes them once their containers stopped (Kubelet.finish).
    # An ended pod (Failed, Succeeded) or a DELETE with gracePeriodSeconds=0
    # goes at once. (A real API server also deletes an unscheduled pod at
    # once; this one binds no pods to nodes, so every other pod waits.)
    graceful_pods: bool = False
    objects: dict[Key, Obj] = attrs.field(factory=dict, init=False)
    history: list[tuple[int, str, str, Obj]] = attrs.field(factory=list, init=False)
    calls: list[Call] = attrs.field(factory=list, init=False)
    # Fault injection: plural → how many upcoming LIST/WATCH requests fail,
    # with `fail_code` (500; 410 is an API server's "too old a resourceVersion"
    # answered on the request itself rather than as an ERROR event).
    fail_next: dict[str, int] = attrs.field(factory=dict, init=False)
    fail_code: int = attrs.field(default=500, init=False)
    fail_message: str = attrs.field(default="injected failure", init=False)
    fail_actions: frozenset[str] = attrs.field(default=frozenset({"list", "watch"}), init=False)
    # A failed WATCH answers 200 with one ERROR event carrying `fail_code`
    # and `fail_message`, then ends (as an API server reports a failure met
    # once the stream is open), rather than an HTTP error status.
    fail_as_event: bool = attrs.field(default=False, init=False)
    # How many upcoming WATCH requests are answered 200 and ended at once
    # with no event at all (a proxy or a misbehaving server).
    empty_watches: int = attrs.field(default=0, init=False)
    # Admission: (plural, body) → None to accept a CREATE, or (code, reason,
    # message) to refuse it, as a ResourceQuota, RBAC or a webhook would.
    admission: Callable[[str, Obj], tuple[int, str, str] | None] | None = attrs.field(
        default=None, init=False
    )
    # A container's output, as `GET …/pods/{name}/log` answers it: (namespace,
    # pod, container, of its last run that ended) → text; "" when a test
    # wrote none.
    pod_logs: dict[tuple[str, str, str, bool], str] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _last_stamp: datetime.datetime | None = attrs.field(default=None, init=False)
    _watches: set[_Watch] = attrs.field(factory=set, init=False)  # type: ignore[var-annotated]
    _listeners: list[Callable[[str, Obj], None]] = attrs.field(factory=list, init=False)

    # ---------------------------------------------------------------- state
    @property
    def resource_version(self) -> int:
        return self._rv

    def _now(self) -> datetime.datetime:
        """The clock's time, a microsecond past the last stamp if the clock
        has not moved since (a FakeClock stands still): objects created one
        after the other keep their order by creationTimestamp."""
        now = self.clock.now()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + datetime.timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def _emit(self, kind: str, group: str, plural: str, obj: Obj) -> None:
        self.history.append((self._rv, group, plural, {"type": kind, "object": copy.deepcopy(obj)}))
        del self.history[: -self.history_limit]
        for w in list(self._watches):
            if w.group == group and w.plural == plural and self._visible(w, obj):
                w.queue.put_nowait({"type": kind, "object": copy.deepcopy(obj)})
        for listener in list(self._listeners):
            listener(kind, copy.deepcopy(obj))

    @staticmethod
    def _visible(w: _Watch, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        ns_ok = w.namespace is None or meta.get("namespace") == w.namespace
        return ns_ok and w.match(meta.get("labels") or {})

    def put(self, group: str, plural: str, obj: Obj, *, event: str = "MODIFIED") -> Obj:
        """Store a new version of an object (bumps resourceVersion, notifies)."""
        self._rv += 1
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        self.objects[(group, plural, meta["namespace"], meta["name"])] = obj
        self._emit(event, group, plural, obj)
        return obj

    def remove(self, group: str, plural: str, namespace: str, name: str) -> Obj:
        obj = self.objects.pop((group, plural, namespace, name))
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._emit("DELETED", group, plural, obj)
        return obj

    def get(self, plural: str, namespace: str, name: str, group: str = "") -> Obj | None:
        return copy.deepcopy(self.objects.get((group, plural, namespace, name)))

    def names(self, plural: str, group: str = "") -> list[str]:
        return sorted(k[3] for k in self.objects if k[0] == group and k[1] == plural)

    def listen(self, fn: Callable[[str, Obj], None]) -> None:
        """Synchronous in-process subscription (the fake kubelet uses it)."""
        self._listeners.append(fn)

    # ---------------------------------------------------------- test knobs
    def drop_watches(self) -> int:
        """Cut every open watch connection mid-stream (no clean end)."""
        for w in list(self._watches):
            w.queue.put_nowait(_DROP)
        return len(self._watches)

    def compact(self) -> None:
        """Forget the event history, as etcd compaction does: resuming from
        any older resourceVersion now answers 410 Gone."""
        self.history.clear()
        self._compacted_at = self._rv

    _compacted_at: int = attrs.field(default=0, init=False)

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    # ------------------------------------------------------------- serving
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is not None and res.plural == "pods" and request.subresource == "log":
            return self._pod_log(request)
        if res is None or request.action is None or request.subresource:
            return await super()._handle(request)
        group, plural = res.group or "", res.plural or ""
        action = str(request.action.value).lower()
        self.calls.append(Call(action, plural, dict(request.params), group))
        if action in self.fail_actions and self.fail_next.get(plural):
            self.fail_next[plural] -= 1
            if action == "watch" and self.fail_as_event:
                return await self._stream_once(request, [self._error_event()])
            if self.fail_code == 410:
                raise ApiError(410, "Expired", "too old resource version")
            raise ApiError(self.fail_code, "InternalError", self.fail_message)
        if action == "watch" and self.empty_watches:
            self.empty_watches -= 1
            return await self._stream_once(request, [])
        ns = request.namespace
        if action == "create":
            self._admit(plural, request.data or {})
            return self._create(group, plural, ns, request.data)
        if action == "list":
            return self._list(group, plural, ns, request.params)
        if action == "watch":
            return await self._watch(request, group, plural, ns)
        key = (group, plural, ns or "", request.name or "")
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{plural} "{request.name}" not found')
        if action == "fetch":
            return aiohttp.web.json_response(self.objects[key])
        if action == "update":
            want = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
            have = self.objects[key]["metadata"]["resourceVersion"]
            if want is not None and want != have:
                raise ApiError(409, "Conflict", f"the object has been modified ({want} != {have})")
            return aiohttp.web.json_response(
                self.put(group, plural, _merge(self.objects[key], request.data or {}))
            )
        if action == "delete":
            forced = request.params.get("gracePeriodSeconds") == "0"  # no kubelet to wait for
            if plural == "pods" and self.graceful_pods and not forced:
                return aiohttp.web.json_response(self._terminate(key))
            return aiohttp.web.json_response(self.remove(*key))
        raise ApiError(405, "MethodNotAllowed", action)

    def _pod_log(self, request: kmock.Request) -> aiohttp.web.Response:
        """A container's log as the API server serves it from the pod's
        kubelet, by its rules (kubelet `validateContainerLogStatus`): the
        previous run's if asked, else the running or ended run's, else the
        last run's (a container waiting to start again), else 400 (waiting
        to start); the text cut by `tailLines`, then `limitBytes`."""
        self.calls.append(Call("fetch", "pods/log", dict(request.params)))
        if self.fail_next.get("pods/log"):
            self.fail_next["pods/log"] -= 1
            raise ApiError(self.fail_code, "Forbidden", self.fail_message)
        ns, name = request.namespace or "", request.name or ""
        pod = self.objects.get(("", "pods", ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        params = request.params
        container = params.get("container") or pod["spec"]["containers"][0]["name"]
        status_of = {
            c["name"]: c
            for key in ("initContainerStatuses", "containerStatuses")
            for c in (pod.get("status") or {}).get(key) or []
        }
        status = status_of.get(container, {})
        state, last = status.get("state") or {}, status.get("lastState") or {}
        previous = params.get("previous") == "true"
        if previous and "terminated" not in last:
            raise ApiError(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{name}" not found',
            )
        ran = "running" in state or "terminated" in state  # (`running: {}` is a state)
        if not previous and not (ran or "terminated" in last):
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: {reason}',
            )
        # The last run's, for a container waiting to start again.
        last_run = previous or not ran
        text = self.pod_logs.get((ns, name, container, last_run), "")
        if "tailLines" in params:
            text = "".join(text.splitlines(keepends=True)[-int(params["tailLines"]) :])
        data = text.encode()
        if "limitBytes" in params:
            data = data[: int(params["limitBytes"])]
        return aiohttp.web.Response(body=data, content_type="text/plain")

    def _error_event(self) -> Obj:
        return {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Timeout" if self.fail_code == 504 else "InternalError",
                "code": self.fail_code,
                "message": self.fail_message,
            },
        }

    async def _stream_once(
        self, request: kmock.Request, events: list[Obj]
    ) -> aiohttp.web.StreamResponse:
        """A watch answered 200 with these events, then ended cleanly."""
        resp = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request._raw_request)
        for ev in events:
            await resp.write(json.dumps(ev).encode() + b"\n")
        await resp.write_eof()
        return resp

    def _admit(self, plural: str, body: Obj) -> None:
        refused = self.admission(plural, body) if self.admission is not None else None
        if refused is not None:
            raise ApiError(*refused)

    def _terminate(self, key: Key) -> Obj:
        obj = self.objects[key]
        if obj["metadata"].get("deletionTimestamp"):
            return obj  # already terminating
        if (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            # As the API server does (the pod strategy's CheckGracefulDelete):
            # a pod whose containers all ended has nothing to wait for.
            return self.remove(*key)
        obj = copy.deepcopy(obj)
        # As the API server does: the request's time plus the grace period.
        grace = 30
        obj["metadata"]["deletionTimestamp"] = _stamp(
            self._now() + datetime.timedelta(seconds=grace)
        )
        obj["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.put(key[0], key[1], obj)

    def _create(self, group: str, plural: str, ns: str | None, body: Obj) -> aiohttp.web.Response:
        meta = body.setdefault("metadata", {})
        meta["namespace"] = ns or meta.get("namespace") or "default"
        key = (group, plural, meta["namespace"], meta.get("name", ""))
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{key[3]}" already exists')
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_stamp(self._now()))
        if plural == "pods":
            body.setdefault("status", {"phase": "Pending"})
        return aiohttp.web.json_response(self.put(group, plural, body, event="ADDED"), status=201)

    def _select(self, group: str, plural: str, ns: str | None, params: dict[str, str]) -> list[Obj]:
        match = selectors.parse(params.get("labelSelector"))
        w = _Watch(group, plural, ns, match)
        return [
            copy.deepcopy(o)
            for (g, p, _, _), o in sorted(self.objects.items())
            if g == group and p == plural and self._visible(w, o)
        ]

    def _list(self, group: str, plural: str, ns: str | None, params: dict[str, str]) -> Any:
        return aiohttp.web.json_response(
            {
                "kind": "List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": self._select(group, plural, ns, params),
            }
        )

    async def _watch(
        self, request: kmock.Request, group: str, plural: str, ns: str | None
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        params = dict(request.params)
        w = _Watch(group, plural, ns, selectors.parse(params.get("labelSelector")))
        since = params.get("resourceVersion") or ""
        if since in ("", "0"):
            current = self._select(group, plural, ns, params)
            backlog = [{"type": "ADDED", "object": o} for o in current]
        elif int(since) < self._compacted_at:
            backlog = [
                {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Expired",
                        "code": 410,
                        "message": f"too old resource version: {since} ({self._rv})",
                    },
                }
            ]
        else:
            backlog = [
                copy.deepcopy(ev)
                for rv, g, p, ev in self.history
                if rv > int(since) and g == group and p == plural and self._visible(w, ev["object"])
            ]
        resp = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(raw)
        timeout = float(params.get("timeoutSeconds") or 3600)
        deadline = asyncio.get_running_loop().time() + timeout
        self._watches.add(w)
        try:
            for ev in backlog:
                await resp.write(json.dumps(ev).encode() + b"\n")
                if ev["type"] == "ERROR":
                    return resp
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(w.queue.get(), left)
                except TimeoutError:
                    break
                if ev is _DROP:
                    assert raw.transport is not None
                    raw.transport.abort()  # mid-stream, no terminating chunk
                    return resp
                await resp.write(json.dumps(ev).encode() + b"\n")
            if params.get("allowWatchBookmarks") == "true":
                # As the API server does: tell the client how far it is now,
                # so a quiet watch resumes from a fresh resourceVersion.
                bookmark = {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self._rv)},
                }
                await resp.write(
                    json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n"
                )
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self._watches.discard(w)
        return resp
