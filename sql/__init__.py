"""The database contract shared by api, reconciler and proxy.

Schema lives in numbered files under `migrations/`; queries live in named
blocks under `queries/` (procrastinate style) and are called by name:

    -- name: get_notebook
    select * from notebooks where id = %(id)s;

A `-- fragment: x` block is text several queries share, put in place of a
`-- include: x` line (the notebook list's four page statements end alike),
in any file of `queries/`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
MIGRATIONS_DIR = HERE / "migrations"
QUERIES_DIR = HERE / "queries"

_BLOCK = re.compile(r"^--\s*(name|fragment):\s*(\w+)\s*$", re.MULTILINE)
# A statement may end with one (its text is stripped: no newline after it).
_INCLUDE = re.compile(r"^[ \t]*--\s*include:\s*(\w+)[ \t]*(?:\n|\Z)", re.MULTILINE)
# A fragment's leading comments are for its readers; an include is not one.
_COMMENT_LINES = re.compile(r"\A(?:(?![ \t]*--\s*include:)[ \t]*--[^\n]*\n)+")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def sent(statement: str) -> str:
    """A statement as it is sent: without its indentation, which is for its
    readers (no literal spans lines), so that the long ones stay under the
    4096 bytes past which psycopg parses a statement again on every call."""
    return _INDENT.sub("", statement)


def parse_blocks(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split a .sql file on `-- name: x` and `-- fragment: x` lines into
    ({name: statement}, {name: fragment}); a fragment's leading comment
    lines are for its readers, not copied into the statements."""
    parts = _BLOCK.split(text)
    # parts = [preamble, kind1, name1, body1, kind2, name2, body2, ...]
    named: dict[str, str] = {}
    fragments: dict[str, str] = {}
    for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        if name in named or name in fragments:
            raise ValueError(f"query {name!r} defined twice")
        if kind == "name":
            named[name] = body.strip().rstrip(";").strip()
        else:
            fragments[name] = _COMMENT_LINES.sub("", body.strip() + "\n")
    return named, fragments


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a .sql file into {name: statement}, its includes put in place."""
    named, fragments = parse_blocks(text)
    return {name: sent(_included(body, fragments)) for name, body in named.items()}


def _included(body: str, fragments: dict[str, str], within: tuple[str, ...] = ()) -> str:
    """`body` with its includes put in place, and theirs (a fragment may
    include another; one that includes itself, however deep, is an error)."""

    def fragment(match: re.Match[str]) -> str:
        name = match[1]
        if name not in fragments:
            raise ValueError(f"no fragment {name!r} to include")
        if name in within:
            raise ValueError(f"fragment {name!r} includes itself")
        return _included(fragments[name], fragments, (*within, name))

    return _INCLUDE.sub(fragment, body)


@cache  # read once per process, for the fragments and the queries alike
def _parsed() -> list[tuple[Path, dict[str, str], dict[str, str]]]:
    return [(path, *parse_blocks(path.read_text())) for path in sorted(QUERIES_DIR.glob("*.sql"))]


@cache
def _fragments() -> dict[str, str]:
    fragments: dict[str, str] = {}
    for path, _, found in _parsed():
        for name, body in found.items():
            if name in fragments:
                raise ValueError(f"fragment {name!r} defined twice ({path.name})")
            fragments[name] = body
    return fragments


def fragment(name: str) -> str:
    """A fragment as the statements that include it send it (its own
    includes put in place): a test checks that they share it."""
    return sent(_included(_fragments()[name], _fragments(), (name,)))


@cache
def queries() -> dict[str, str]:
    """All named queries of `queries/*.sql`, loaded once per process; a
    fragment may be included from any file (who may see a notebook is one
    text wherever it is asked)."""
    fragments = _fragments()
    out: dict[str, str] = {}
    for path, named, _ in _parsed():
        for name, body in named.items():
            if name in out:
                raise ValueError(f"query {name!r} defined twice ({path.name})")
            out[name] = sent(_included(body, fragments))
    return out


def query(name: str) -> str:
    return queries()[name]


def migration_files() -> list[tuple[int, str, Path]]:
    """(version, name, path) of every migration, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, rest = path.stem.partition("_")
        found.append((int(number), rest, path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a number")
    return found


def latest_version() -> int:
    files = migration_files()
    return files[-1][0] if files else 0
