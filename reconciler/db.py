"""Typed row access for the reconciler's named queries (the pool's connections
already return dict rows; this says so to the type checker)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from sql import query


async def fetchone(
    conn: AsyncConnection[Any], name: str, params: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)  # type: ignore[arg-type]
        return await cur.fetchone()


async def fetchall(
    conn: AsyncConnection[Any], name: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(name), params)  # type: ignore[arg-type]
        return await cur.fetchall()
