"""The request-body validator: each failure names the field with a stable code."""

from __future__ import annotations

import pytest

from api.errors import BadRequest, echoed
from api.notebooks import CREATE_SCHEMA
from api.validation import check

OK = {"name": "n", "workloadConfigId": "ABC"}


@pytest.mark.parametrize(
    ("patch", "code", "field"),
    [
        ({"name": ""}, "invalid_length", "name"),
        ({"name": "\t "}, "invalid_value", "name"),
        ({"name": "\ud800"}, "invalid_value", "name"),
        ({"name": None}, "wrong_type", "name"),
        ({"idleTimeoutSeconds": 1.5}, "wrong_type", "idleTimeoutSeconds"),
        ({"idleTimeoutSeconds": 100}, "out_of_range", "idleTimeoutSeconds"),
        ({"teamIds": ["A"] * 101}, "out_of_range", "teamIds"),
        ({"teamIds": ["A", "a"]}, "invalid_id", "teamIds[1]"),
        ({"extra": 1}, "unknown_field", "extra"),
    ],
)
def test_bad_values_name_field_and_code(patch: dict, code: str, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        check({**OK, **patch}, CREATE_SCHEMA, "")
    assert (err.value.code, err.value.field) == (code, field)


@pytest.mark.parametrize("value", [0, 300, 604800, 3600.0])
def test_timeouts_accept_zero_and_the_range(value: float) -> None:
    check({**OK, "idleTimeoutSeconds": value}, CREATE_SCHEMA, "")


def test_valid_body_passes() -> None:
    check({**OK, "description": "", "teamIds": [], "detachedTimeoutSeconds": 0}, CREATE_SCHEMA, "")


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("k" * 64, "k" * 64),  # as long as may be shown: whole
        ("k" * 65, "k" * 64 + "\u2026"),
        ("\x00\n\x1b[31m", "\\u0000\\u000a\\u001b[31m"),
        ("\ud800", "\\ud800"),  # a lone surrogate: no valid text would hold it
        ("a\u200bb\u00a0", "a\\u200bb\\u00a0"),  # invisible, and a space that is not " "
        ("\U000e0001", "\\U000e0001"),
        ("caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),  # what prints stays as it is
    ],
)
def test_a_clients_name_is_echoed_short_and_printable(sent: str, shown: str) -> None:
    assert echoed(sent) == shown
