"""A notebook started from a file its member brings (docs/api.md "Starting
from a file"): a Marimo notebook or a Python script (`py`, `# %%` cells
split by jupytext), a Jupyter notebook (`ipynb`) or a Markdown notebook
(`md`), turned into the Marimo file the editor opens, as `marimo convert`
does it, by the Marimo version the platform runs (pinned in pyproject.toml).

Converted at create, so a file that cannot be read is a 400 naming why,
never a start that fails. The conversion is CPU-bound Python that grows with
the file (20,000 lines: seconds) and can fail deep in Marimo's parser, so it
runs in a child process of its own (`Converter`): one file at a time, killed
and replaced past CONVERT_TIMEOUT_SECONDS; the API's event loop and the
database connections are never held by it (api/context.py `prepared`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

from aiohttp import web

from api.errors import BadRequest, Unavailable
from api.validation import obj
from common import notebook_file

FORMATS = ("py", "ipynb", "md")
MAX_FILE_BYTES = notebook_file.MAX_BYTES  # once converted
CONVERT_TIMEOUT_SECONDS = 15.0
QUEUE_SECONDS = 30.0  # a file's wait for its turn
START_SECONDS = 30.0  # the child's start, Marimo's import included
READY = "ready\n"
READY_LINE = READY.encode()
FIELD = "source.content"

SOURCE_SCHEMA = obj(
    {
        "format": {"type": "string", "enum": list(FORMATS)},
        # A whole file: any text (the body's checks already refuse NUL and
        # lone surrogates); its size is judged after conversion.
        "content": {"type": "string", "minLength": 1},
    },
    required=("format", "content"),
)


def _invalid(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid_source", field=FIELD)


# --- in the child process -------------------------------------------------


def _from_py(text: str) -> str:
    from marimo._ast.parse import parse_notebook
    from marimo._convert.converters import MarimoConvert

    parsed = parse_notebook(text, filepath="notebook.py")
    if parsed is not None and parsed.valid:
        # Already a Marimo notebook: kept byte for byte (a cell with a syntax
        # error too, which the editor shows for its member to mend).
        return text
    # A script: cut at its `# %%` markers (VS Code's, Spyder's), else one
    # cell; code that does not parse is kept as it was, for its member to mend.
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
    return MarimoConvert.from_ipynb(text).to_py()


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

    return MarimoConvert.from_md(text).to_py()


_CONVERTERS = {"py": _from_py, "ipynb": _from_ipynb, "md": _from_md}
_NAMES = {"py": "Python file", "ipynb": "Jupyter notebook", "md": "Markdown notebook"}


def marimo_file(source: dict[str, Any]) -> str:
    """The notebook's first file from a validated `source` object (pure;
    raises BadRequest naming what is wrong)."""
    # A byte-order mark, as editors on Windows save it, would make the first
    # line unparsable.
    text = source["content"].removeprefix("\ufeff")
    try:
        converted = _CONVERTERS[source["format"]](text)
    except BadRequest:
        raise
    except Exception:
        # Marimo's own errors (a RecursionError, or its parser's MemoryError
        # on deep nesting) say nothing a member can act on.
        raise _invalid(f"The {_NAMES[source['format']]} cannot be converted.") from None
    if "\x00" in converted:  # a JSON string may carry one escaped; PostgreSQL's text not
        raise _invalid("The file holds a NUL character, which a notebook cannot.")
    if len(converted.encode()) > MAX_FILE_BYTES:
        raise BadRequest(
            f"{FIELD} makes a notebook file over {MAX_FILE_BYTES // 1024} KiB.",
            code="invalid_length",
            field=FIELD,
        )
    return converted


def serve() -> None:
    """The child: `ready` once Marimo is imported, then one JSON request per
    line on stdin, one answer per line on stdout (`{"file"}` or `{"code",
    "detail"}`), until stdin closes."""
    from marimo._ast.parse import parse_notebook  # noqa: F401  (the import is the start-up)
    from marimo._convert.converters import MarimoConvert  # noqa: F401

    sys.stdout.write(READY)
    sys.stdout.flush()
    # Marimo warns on stderr about files it reads; nobody reads that here.
    for line in sys.stdin:
        try:
            answer: dict[str, str] = {"file": marimo_file(json.loads(line))}
        except BadRequest as exc:
            answer = {"code": exc.code, "detail": exc.detail}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# --- in the API process ---------------------------------------------------


class Converter:
    """The API process's converter child, started at the first file, one
    file at a time; a file that takes longer than `timeout`, a child that
    dies, or a request given up ends the child, and the next file starts
    another, so no answer is ever read for the wrong file. A file waits at
    most QUEUE_SECONDS for its turn (503, retry), so one member's files
    cannot hold others' requests without end."""

    def __init__(self, timeout: float = CONVERT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._child: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()

    async def convert(self, source: dict[str, Any]) -> str:
        try:
            await asyncio.wait_for(self._turn.acquire(), QUEUE_SECONDS)
        except TimeoutError:
            raise Unavailable(
                "Other notebook files are being converted; retry.", code="converter_busy"
            ) from None
        try:
            line = await self._converted(source)
        finally:
            self._turn.release()
        answer = json.loads(line)
        if "file" not in answer:
            raise BadRequest(answer["detail"], code=answer["code"], field=FIELD)
        return str(answer["file"])

    async def _converted(self, source: dict[str, Any]) -> bytes:
        """The child's whole answer line for `source`."""
        child = await self._started()
        assert child.stdin is not None and child.stdout is not None
        request = json.dumps({"format": source["format"], "content": source["content"]})
        whole = False
        try:
            child.stdin.write(request.encode() + b"\n")
            await child.stdin.drain()
            line = await asyncio.wait_for(child.stdout.readline(), self.timeout)
            whole = line.endswith(b"\n")
        except TimeoutError:
            raise _invalid(
                f"The file took longer than {self.timeout:g} s to convert: split it, or "
                "convert it with `marimo convert` and bring the .py it makes."
            ) from None
        except (ConnectionError, ValueError):
            pass  # the child died mid-file, or its answer was past the limit: not whole
        finally:
            if not whole:  # timed out, died, or this request given up mid-file
                await self.close()
        if not whole:
            # Killed (memory, a signal, the server stopping): not the file's
            # fault for all we know.
            raise Unavailable(
                "The notebook file converter stopped; retry.", code="converter_unavailable"
            )
        return line

    async def _started(self) -> asyncio.subprocess.Process:
        if self._child is not None and self._child.returncode is None:
            return self._child
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the working directory's `api` package, whatever it holds
            "-m",
            "api.sources",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            # It reads members' files: none of the API's secrets (the
            # database's URL, the signing keys) in its environment.
            env={k: v for k, v in os.environ.items() if k in _CHILD_ENV},
            limit=_ANSWER_LIMIT,
        )
        # Its start (Python, Marimo's import: 0.6 s, bench/README.md) is not the
        # file's time; it is ours once it said so (a start given up leaves nothing).
        assert child.stdout is not None
        ready = False
        try:
            ready = await asyncio.wait_for(child.stdout.readline(), START_SECONDS) == READY_LINE
        except (TimeoutError, ValueError):
            pass
        finally:
            if not ready:
                await _ended(child)
        if not ready:
            raise Unavailable(
                "The notebook file converter did not start; retry.",
                code="converter_unavailable",
            )
        self._child = child
        return child

    async def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            await _ended(child)


async def _ended(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
    await child.wait()


# What the child needs of the API's environment to find Python and its packages.
_CHILD_ENV = frozenset({"PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "LANG", "LC_ALL", "TMPDIR"})
# One answer is one line: a file of MAX_FILE_BYTES, JSON-escaped: at most six
# characters for each of its bytes (a control character is `\\u0001`).
_ANSWER_LIMIT = 6 * MAX_FILE_BYTES + 4096

CONVERTER = web.AppKey("converter", Converter)


async def converter_ctx(app: web.Application) -> Any:
    """The app's converter, its child ended with the app."""
    app[CONVERTER] = Converter()
    yield
    await app[CONVERTER].close()


if __name__ == "__main__":
    serve()
