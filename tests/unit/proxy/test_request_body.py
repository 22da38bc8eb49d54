"""The request body the app's forwarding streams to Marimo, once access ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy import metrics
from proxy.forward import _request_body, _Revoked


class _Request:
    """What `_request_body` reads of an aiohttp request: its body, in chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.content = self
        self._chunks = chunks

    async def iter_chunked(self, _: int) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


@pytest.mark.parametrize(
    "chunks", [[b"part1"], [b"part1", b"part2"]], ids=["then-its-end", "then-more"]
)
async def test_a_body_whose_access_ended_neither_goes_on_nor_ends(chunks: list[bytes]) -> None:
    """Its end would complete the request upstream as surely as more bytes
    (a chunked body's last chunk): after a revocation the body fails instead,
    and aiohttp drops the upstream connection with the request unfinished."""
    revoked: list[str] = []
    body = _request_body(_Request(chunks), revoked)  # type: ignore[arg-type]
    assert await anext(body) == b"part1"
    revoked.append("access")
    with pytest.raises(_Revoked):
        await anext(body)


async def test_a_chunk_is_counted_once_written_not_when_handed_over() -> None:
    """aiohttp asks for the next chunk only after writing the last one: a
    chunk whose write never finished (upstream gone, a revocation) is not
    counted as sent to Marimo."""
    sent = metrics.HTTP_TO_UPSTREAM
    before = sent._value.get()
    body = _request_body(_Request([b"part1", b"part22"]), [])  # type: ignore[arg-type]
    assert await anext(body) == b"part1"
    assert sent._value.get() == before  # handed to the writer, not written yet
    assert await anext(body) == b"part22"
    assert sent._value.get() == before + 5
    with pytest.raises(StopAsyncIteration):
        await anext(body)
    assert sent._value.get() == before + 11
