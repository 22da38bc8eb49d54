"""The database contract shared by api, reconciler and proxy.

Schema lives in numbered files under `migrations/`; queries live in named
blocks under `queries/` (procrastinate style) and are called by name:

    -- name: get_notebook
    select * from notebooks where id = %(id)s;
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
MIGRATIONS_DIR = HERE / "migrations"
QUERIES_DIR = HERE / "queries"

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a .sql file into {name: statement} on `-- name: x` lines."""
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"query {name!r} defined twice")
        out[name] = body.strip().rstrip(";").strip()
    return out


@cache
def queries() -> dict[str, str]:
    """All named queries of `queries/*.sql`, loaded once per process."""
    out: dict[str, str] = {}
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        for name, body in parse_named_queries(path.read_text()).items():
            if name in out:
                raise ValueError(f"query {name!r} defined twice ({path.name})")
            out[name] = body
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
