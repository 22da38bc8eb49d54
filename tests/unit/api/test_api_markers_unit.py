"""Pagination markers are opaque, signed, and bound to their list's scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import BadRequest
from api.markers import Markers

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_round_trip() -> None:
    m = Markers("k" * 40)
    assert m.decode("s", m.encode("s", WHEN, "ID1")) == (WHEN, "ID1")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "A" + t,
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: "a.b.c",
        lambda t: "%%%.%%%",
    ],
)
def test_tampered_markers_are_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    m = Markers("k" * 40)
    with pytest.raises(BadRequest) as err:
        m.decode("s", mutate(m.encode("s", WHEN, "ID1")))
    assert err.value.code == "invalid_marker" and err.value.field == "marker"


def test_other_scope_or_key_is_refused() -> None:
    m = Markers("k" * 40)
    token = m.encode("notebooks:A:", WHEN, "ID1")
    with pytest.raises(BadRequest):
        m.decode("notebooks:B:", token)
    with pytest.raises(BadRequest):
        Markers("j" * 40).decode("notebooks:A:", token)
