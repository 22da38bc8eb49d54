"""A notebook started from a file its member brings (docs/api.md "Starting
from a file"): a Marimo notebook or a plain Python script (`py`), a Jupyter
notebook (`ipynb`) or a Markdown notebook (`md`), turned into the Marimo file
the editor opens, as `marimo convert` does it, by the Marimo version the
platform runs (pinned in pyproject.toml). Converted here, at create, so a
file that cannot be read is a 400 naming why, never a start that fails."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api.errors import BadRequest
from api.validation import obj

FORMATS = ("py", "ipynb", "md")
# What the notebook's file may weigh once converted: far above a hand-written
# notebook, and within what a Kubernetes Secret carries to the seeding pod.
MAX_FILE_BYTES = 512 * 1024
FIELD = "source.content"

SOURCE_SCHEMA = obj(
    {
        "format": {"type": "string", "enum": list(FORMATS)},
        # A whole file: any text (JSON strings already hold no lone surrogate
        # once checked, and no NUL); its size is judged after conversion.
        "content": {"type": "string", "minLength": 1},
    },
    required=("format", "content"),
)


def _invalid(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid_source", field=FIELD)


def _from_py(text: str) -> str:
    from marimo._ast.parse import parse_notebook
    from marimo._convert.converters import MarimoConvert

    try:
        parsed = parse_notebook(text, filepath="notebook.py")
    except SyntaxError as exc:
        raise _invalid(f"The Python file has a syntax error on line {exc.lineno}.") from None
    if parsed is not None and parsed.valid:
        # Already a Marimo notebook: kept byte for byte (a cell with a syntax
        # error too, which the editor shows for its member to mend).
        return text
    # A plain script: split into cells; code that does not parse becomes a
    # cell the editor shows as it was, so nothing the member brought is lost.
    return MarimoConvert.from_non_marimo_python_script(text).to_py()


def _from_ipynb(text: str) -> str:
    from marimo._convert.converters import MarimoConvert

    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid("The Jupyter notebook is not valid JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        # nbformat 3 and older kept cells under "worksheets".
        raise _invalid("The file is not a Jupyter notebook of format 4: it has no list of cells.")
    for number, cell in enumerate(doc["cells"], 1):
        _check_cell(cell, number)
    try:
        return MarimoConvert.from_ipynb(text).to_py()
    except Exception:  # the converter's own errors say nothing a member can act on
        raise _invalid("The Jupyter notebook cannot be converted.") from None


def _check_cell(cell: object, number: int) -> None:
    """What the converter reads of a cell, so a broken one is named, not a
    Python error from deep inside it."""
    if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
        raise _invalid(f"Cell {number} of the Jupyter notebook has no cell_type.")
    source = cell.get("source")
    if not (
        isinstance(source, str)
        or (isinstance(source, list) and all(isinstance(line, str) for line in source))
    ):
        raise _invalid(f"Cell {number} of the Jupyter notebook has no source text.")


def _from_md(text: str) -> str:
    from marimo._convert.converters import MarimoConvert

    try:
        return MarimoConvert.from_md(text).to_py()
    except Exception as exc:
        raise _invalid(f"The Markdown notebook cannot be converted: {exc}") from None


_CONVERTERS = {"py": _from_py, "ipynb": _from_ipynb, "md": _from_md}


def marimo_file(source: dict[str, Any]) -> str:
    """The notebook's first file from a validated `source` object (pure)."""
    # A byte-order mark, as editors on Windows save it, would make the first
    # line unparsable.
    text = source["content"].removeprefix("\ufeff")
    converted = _CONVERTERS[source["format"]](text)
    if len(converted.encode()) > MAX_FILE_BYTES:
        raise BadRequest(
            f"{FIELD} makes a notebook file over {MAX_FILE_BYTES // 1024} KiB.",
            code="invalid_length",
            field=FIELD,
        )
    return converted


async def converted(source: dict[str, Any]) -> str:
    """`marimo_file` off the event loop: a large notebook takes a while to parse."""
    return await asyncio.to_thread(marimo_file, source)
