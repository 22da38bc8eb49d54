"""Named queries and the fragments they share (sql/__init__.py)."""

from __future__ import annotations

import pytest

from sql import parse_named_queries, queries

TEXT = """-- preamble
-- fragment: tail
-- read by people, not sent
rows as (select 1 as x)
select x,

-- name: first
with a as (select 1),
-- include: tail
    1 as one;

-- name: second
with b as (select 2),
  -- include: tail
    2 as two;
"""


def test_a_fragment_is_put_in_place_of_each_include_without_its_comments() -> None:
    named = parse_named_queries(TEXT)
    # Sent without indentation (it is for readers).
    assert named == {
        "first": "with a as (select 1),\nrows as (select 1 as x)\nselect x,\n1 as one",
        "second": "with b as (select 2),\nrows as (select 1 as x)\nselect x,\n2 as two",
    }


def test_an_include_of_no_fragment_and_a_name_given_twice_are_errors() -> None:
    with pytest.raises(ValueError, match="no fragment 'missing'"):
        parse_named_queries("-- name: q\nselect\n-- include: missing\n1;\n")
    with pytest.raises(ValueError, match="defined twice"):
        parse_named_queries("-- fragment: q\n1\n-- name: q\nselect 1;\n")


def test_no_loaded_query_keeps_an_include_line() -> None:
    assert not [name for name, text in queries().items() if "-- include:" in text]


def test_a_fragment_of_one_file_is_included_from_another() -> None:
    """Who may see a notebook is one text, wherever it is asked."""
    texts = queries()
    assert "n.member_id = %(member_id)s" in texts["api_offer_body"]
    assert "-- include" not in "".join(texts.values())


def test_a_fragment_may_include_another_but_not_itself() -> None:
    a = "-- fragment: a\nx,\n-- include: b\n"
    nested = a + "-- fragment: b\ny\n-- name: q\nselect\n-- include: a\n1;\n"
    assert parse_named_queries(nested) == {"q": "select\nx,\ny\n1"}
    looped = a + "-- fragment: b\ny\n-- include: a\n-- name: q\nselect\n-- include: a\n"
    with pytest.raises(ValueError, match="includes itself"):
        parse_named_queries(looped)


def test_an_include_first_in_a_fragment_is_not_taken_for_its_comment() -> None:
    text = "-- fragment: a\n-- read by people\n-- include: b\nx\n-- fragment: b\ny\n"
    assert parse_named_queries(text + "-- name: q\nselect\n-- include: a\n1;\n") == {
        "q": "select\ny\nx\n1"
    }
    looped = "-- fragment: a\n-- include: a\n-- name: q\nselect\n-- include: a\n"
    with pytest.raises(ValueError, match="includes itself"):
        parse_named_queries(looped)
