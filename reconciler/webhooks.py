"""Webhook deliveries (docs/api.md "Webhooks"): the workers send each status
change to the organization's webhooks, signed as Standard Webhooks sign
(standardwebhooks.com: `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>`), at least once, and try again
with growing waits for a day. Deliveries are written with the status change
itself (migration 0029's trigger), so a crash loses none; a worker claims a
few for a lease, sends them at once, and records each outcome."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import hmac
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from common import webhooks
from common.clock import Clock
from reconciler import metrics
from reconciler.db import fetchall, fetchone
from sql import query

log = structlog.get_logger("webhooks")

EVENT_TYPE = "notebook.status_changed"
TEST_TYPE = "webhook.test"  # a delivery an org admin asked for, to try the receiver
BATCH = 20  # deliveries claimed and sent at once by one worker
# A webhook none of whose deliveries succeeded for this long is disabled
# (checked as one is given up, after its day of retries).
DISABLE_AFTER_DAYS = 3
TIMEOUT_SECONDS = 10.0  # a receiver answers within this, or the attempt failed
LEASE_SECONDS = 60  # a claimed delivery is another worker's again after this
FIRST_WAIT = timedelta(seconds=10)  # then 30 s, 90 s, … up to LONGEST_WAIT
LONGEST_WAIT = timedelta(hours=1)
GIVE_UP_AFTER = webhooks.GIVE_UP_AFTER  # from the status change
MAX_ERROR = 300  # characters of an error kept for the deliveries' list


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks' signature of one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(webhooks.secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def retry_at(attempts: int, created_at: datetime, now: datetime) -> datetime | None:
    """When to try a delivery again after `attempts` failed, or None to give
    up: waits of 10 s, 30 s, 90 s, … up to an hour, for a day (pure)."""
    # (The power bounded: past an hour it is an hour, and 3**30 tens of
    # seconds would not fit a timedelta.)
    wait = min(FIRST_WAIT * 3 ** min(max(attempts - 1, 0), 10), LONGEST_WAIT)
    at = now + wait
    return at if at <= created_at + GIVE_UP_AFTER else None


class PublicResolver(AbstractResolver):
    """The system's resolver, keeping public addresses only (unless the
    operator allows any): checked as each delivery connects, so a name that
    resolves to 127.0.0.1 or 169.254.169.254 later than its webhook was made
    (DNS rebinding) reaches nothing."""

    def __init__(self, allow_insecure: bool) -> None:
        self._resolver = DefaultResolver()
        self._allow_insecure = allow_insecure

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        allowed = [r for r in found if webhooks.address_allowed(r["host"], self._allow_insecure)]
        if not allowed:
            # (errno and strerror both: aiohttp's connection error says the latter.)
            raise OSError(errno.EADDRNOTAVAIL, f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def client_session(allow_insecure: bool) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=PublicResolver(allow_insecure), limit=BATCH)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
        headers={"User-Agent": "notebooks-webhooks/1"},
        trust_env=False,  # no proxy from the environment: the address check is ours
    )


async def send(
    session: aiohttp.ClientSession,
    delivery: dict[str, Any],
    now: datetime,
    allow_insecure: bool,
) -> tuple[int | None, str | None]:
    """POST one delivery: (the receiver's status, None) when it answered,
    2xx or not; (status or None, why) when it was not delivered."""
    problem = webhooks.url_problem(delivery["url"], allow_insecure)
    if problem is not None:  # an address in the URL is never resolved: checked here
        return None, f"The URL {problem}."
    message_id = f"delivery_{delivery['id']}"
    timestamp = int(now.timestamp())  # the attempt's: a receiver refuses stale ones
    # The payload's `timestamp` is the event's (Standard Webhooks), its data
    # the history's; both JSON text from PostgreSQL.
    kind = TEST_TYPE if delivery["test"] else EVENT_TYPE
    body = (
        f'{{"type":"{kind}","timestamp":{delivery["occurred"]},"data":{delivery["data"]}}}'
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        # The secret before a rotation signs beside the new one for a day:
        # Standard Webhooks' receivers accept any of the signatures.
        "webhook-signature": " ".join(
            sign(secret, message_id, timestamp, body)
            for secret in (delivery["secret"], delivery["previous_secret"])
            if secret
        ),
    }
    try:
        async with session.post(
            delivery["url"], data=body, headers=headers, allow_redirects=False
        ) as resp:
            if 200 <= resp.status < 300:
                return resp.status, None
            return resp.status, f"The receiver answered {resp.status} {resp.reason or ''}".strip()
    except TimeoutError:
        return None, f"The receiver did not answer within {TIMEOUT_SECONDS:g} s."
    except (aiohttp.ClientError, OSError) as exc:
        return None, f"Could not reach the receiver: {exc}"[:MAX_ERROR]
    except Exception as exc:  # anything else is this delivery's, never its batch's
        log.exception("webhook_send_failed", delivery_id=delivery["id"])
        return None, f"Could not send it: {type(exc).__name__}: {exc}"[:MAX_ERROR]


async def deliver_due(
    pool: AsyncConnectionPool,
    session: aiohttp.ClientSession,
    now: Callable[[], datetime],
    allow_insecure: bool,
) -> int:
    """Claim the due deliveries (a batch), send them at once, record each
    outcome; how many were claimed."""
    async with pool.connection() as conn:
        due = await fetchall(
            conn,
            "webhook_deliveries_claim",
            {"now": now(), "limit": BATCH, "lease": LEASE_SECONDS},
        )
    if not due:
        return 0
    sent_at = now()
    outcomes = await asyncio.gather(*(send(session, d, sent_at, allow_insecure) for d in due))
    async with pool.connection() as conn:
        for delivery, (status, error) in zip(due, outcomes, strict=True):
            lease = {"id": delivery["id"], "lease_until": delivery["locked_until"]}
            if error is None:
                await conn.execute(
                    query("webhook_delivery_sent"),
                    {**lease, "now": now(), "response_status": status},
                )
                metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
                continue
            again = retry_at(delivery["attempts"], delivery["created_at"], now())
            await conn.execute(
                query("webhook_delivery_missed"),
                {
                    **lease,
                    "next_attempt_at": again,
                    "response_status": status,
                    "error": error[:MAX_ERROR],
                },
            )
            metrics.WEBHOOK_DELIVERIES.labels("retry" if again else "failed").inc()
            if again is None:
                await disable_if_failing(conn, delivery["webhook_id"], now(), error)
            log.info(
                "webhook_not_delivered",
                delivery_id=delivery["id"],
                attempts=delivery["attempts"],
                error=error[:MAX_ERROR],
                gave_up=again is None,
            )
    return len(due)


async def disable_if_failing(
    conn: AsyncConnection[Any], webhook_id: str, now: datetime, error: str
) -> None:
    """After a delivery given up: a webhook none of whose deliveries has
    succeeded for DISABLE_AFTER_DAYS is disabled, saying why."""
    reason = (
        f"Disabled by the platform: no delivery has succeeded for {DISABLE_AFTER_DAYS} days"
        f" (the last: {error[:MAX_ERROR]}). Enable it again once its receiver answers."
    )
    found = await fetchone(
        conn,
        "webhook_disable_failing",
        {"webhook_id": webhook_id, "now": now, "days": DISABLE_AFTER_DAYS, "reason": reason},
    )
    if found is not None:
        metrics.WEBHOOKS_DISABLED.inc()
        log.warning("webhook_disabled", webhook_id=webhook_id, reason=reason)


async def webhook_loop(
    pool: AsyncConnectionPool,
    stop: asyncio.Event,
    clock: Clock,
    allow_insecure: bool,
    interval: float = 1.0,
) -> None:
    """Send due deliveries until `stop`: at once while there are more, else
    every `interval` seconds. A failure (the database away) is logged and
    the loop goes on."""
    async with client_session(allow_insecure) as session:
        while not stop.is_set():
            claimed = 0
            try:
                claimed = await deliver_due(pool, session, clock.now, allow_insecure)
            except Exception:
                log.exception("webhook_deliveries_failed")
            if claimed < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
