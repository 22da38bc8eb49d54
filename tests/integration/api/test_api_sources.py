"""A notebook created from a file its member brings (`source` on create,
docs/api.md "Starting from a file"): a Marimo notebook kept as it is, a plain
script, a Jupyter or a Markdown notebook converted to Marimo's file, stored
for the first start; a file that cannot be read refused with nothing written."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient
from api_factories import Factory, World, body_of, refused
from marimo._ast.parse import parse_notebook

from api import sources
from api.sources import CONVERTER, MAX_FILE_BYTES

NB = "/api/v1/workloads/notebooks"

MARIMO_FILE = """import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def _():
    greeting = "héllo, données"  # kept byte for byte, accents too
    return (greeting,)


if __name__ == "__main__":
    app.run()
"""

JUPYTER = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Revenue by region"]},
        {
            "cell_type": "code",
            "execution_count": 3,
            "metadata": {},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["4950\n"]}],
            "source": ["total = sum(range(100))\n", "print(total)"],
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


async def create(client: TestClient, world: World, source: object, **fields: Any) -> Any:
    body = {"name": "imported", "workloadConfigId": world.config, "source": source, **fields}
    return await client.post(NB, json=body, headers=world.owner.auth)


def seed_of(factory: Factory, notebook_id: str) -> str | None:
    return factory.value(  # type: ignore[no-any-return]
        "select source from notebook_seeds where notebook_id = %s", notebook_id
    )


def a_marimo_notebook(text: str) -> bool:
    parsed = parse_notebook(text, filepath="notebook.py")
    return parsed is not None and parsed.valid


async def created_seed(client: TestClient, world: World, factory: Factory, source: object) -> str:
    resp = await create(client, world, source)
    body = await body_of(resp)
    assert resp.status == 201, body
    nb = body["included"]["notebooks"][0]
    assert nb["status"] == "stopped" and nb["name"] == "imported"
    assert "source" not in nb  # the file is the editor's from then on, not a field
    seed = seed_of(factory, body["item"]["notebookId"])
    assert seed is not None
    return seed


async def test_a_marimo_notebook_is_kept_byte_for_byte(
    client: TestClient, world: World, factory: Factory
) -> None:
    seed = await created_seed(client, world, factory, {"format": "py", "content": MARIMO_FILE})
    assert seed == MARIMO_FILE


def cells_of(text: str) -> list[str]:
    parsed = parse_notebook(text, filepath="notebook.py")
    assert parsed is not None and parsed.valid
    return [cell.code for cell in parsed.cells]


async def test_a_plain_python_script_becomes_a_marimo_notebook_of_one_cell(
    client: TestClient, world: World, factory: Factory
) -> None:
    script = "import math\n\nradius = 2\nprint(math.pi * radius ** 2)\n"
    seed = await created_seed(client, world, factory, {"format": "py", "content": script})
    assert cells_of(seed) == ["import math\n\nradius = 2\nprint(math.pi * radius ** 2)"]


async def test_a_script_with_cell_markers_is_cut_at_them(
    client: TestClient, world: World, factory: Factory
) -> None:
    """VS Code's and Spyder's `# %%` cells (through jupytext)."""
    script = "# %%\nimport math\n\n# %% [markdown]\n# Area\n\n# %%\narea = math.pi * 4\n"
    seed = await created_seed(client, world, factory, {"format": "py", "content": script})
    cells = cells_of(seed)
    assert "import math" in cells and "area = math.pi * 4" in cells
    assert any("mo.md" in c and "Area" in c for c in cells)


async def test_a_script_that_does_not_parse_is_kept_for_its_member_to_mend(
    client: TestClient, world: World, factory: Factory
) -> None:
    # A byte-order mark first, as some editors save files.
    script = "\ufeffdef broken(:\n    pass\n"
    seed = await created_seed(client, world, factory, {"format": "py", "content": script})
    assert a_marimo_notebook(seed)
    assert "app._unparsable_cell(" in seed and "def broken(:" in seed
    assert "\ufeff" not in seed


async def test_a_jupyter_notebook_is_converted_without_its_outputs(
    client: TestClient, world: World, factory: Factory
) -> None:
    source = {"format": "ipynb", "content": json.dumps(JUPYTER)}
    seed = await created_seed(client, world, factory, source)
    assert a_marimo_notebook(seed)
    assert "total = sum(range(100))" in seed and "print(total)" in seed
    assert "Revenue by region" in seed and "mo.md" in seed
    assert "4950" not in seed  # the outputs were the old kernel's, not code


async def test_a_markdown_notebook_is_converted(
    client: TestClient, world: World, factory: Factory
) -> None:
    md = "---\ntitle: Sales\n---\n\n# Sales\n\n```python {.marimo}\nx = 40 + 2\n```\n"
    seed = await created_seed(client, world, factory, {"format": "md", "content": md})
    assert a_marimo_notebook(seed)
    assert "x = 40 + 2" in seed


async def test_without_a_source_the_first_start_uses_the_template(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await client.post(
        NB, json={"name": "plain", "workloadConfigId": world.config}, headers=world.owner.auth
    )
    assert resp.status == 201
    assert seed_of(factory, (await body_of(resp))["item"]["notebookId"]) is None


@pytest.mark.parametrize(
    ("source", "code", "field", "says"),
    [
        (
            {"format": "ipynb", "content": "{not json"},
            "invalid_source",
            "source.content",
            "not valid JSON",
        ),
        (
            {"format": "ipynb", "content": '{"worksheets": []}'},
            "invalid_source",
            "source.content",
            "no list of cells",
        ),
        (
            {"format": "ipynb", "content": "[1, 2]"},
            "invalid_source",
            "source.content",
            "no list of cells",
        ),
        (
            {"format": "ipynb", "content": '{"cells": [{"cell_type": "code", "source": ""}, 1]}'},
            "invalid_source",
            "source.content",
            "Cell 2 of the Jupyter notebook has no cell_type",
        ),
        (
            {"format": "ipynb", "content": '{"cells": [{"cell_type": "code"}]}'},
            "invalid_source",
            "source.content",
            "Cell 1 of the Jupyter notebook has no source",
        ),
        (
            {"format": "ipynb", "content": '{"cells": [{"cell_type": "code", "source": [1]}]}'},
            "invalid_source",
            "source.content",
            "Cell 1 of the Jupyter notebook has no source",
        ),
        (
            {
                "format": "ipynb",
                "content": '{"cells": [{"cell_type": "code", "source": "x", "metadata": 5}]}',
            },
            "invalid_source",
            "source.content",
            "cannot be converted",
        ),
        # Marimo's parser gives up on deep nesting: said, not a 500.
        (
            {"format": "py", "content": "x = " + "+".join(["a"] * 200_000)},
            "invalid_source",
            "source.content",
            "The Python file cannot be converted.",
        ),
        (
            {"format": "py", "content": "x = " + "-" * 100_000 + "1"},
            "invalid_source",
            "source.content",
            "The Python file cannot be converted.",
        ),
        # A NUL escaped in the JSON would reach the file; PostgreSQL stores none.
        (
            {
                "format": "ipynb",
                "content": '{"cells": [{"cell_type": "code", "source": "x = \'\\u0000\'"}]}',
            },
            "invalid_source",
            "source.content",
            "NUL character",
        ),
        ({"format": "docx", "content": "x"}, "invalid_value", "source.format", None),
        ({"format": "py"}, "missing_field", "source.content", None),
        ({"content": "x = 1"}, "missing_field", "source.format", None),
        ({"format": "py", "content": ""}, "invalid_length", "source.content", None),
        (
            {"format": "py", "content": "x = 1", "name": "a.py"},
            "unknown_field",
            "source.name",
            None,
        ),
        ({"format": "py", "content": 42}, "wrong_type", "source.content", None),
        ("x = 1", "wrong_type", "source", None),
    ],
)
async def test_a_file_that_cannot_be_read_is_refused_and_nothing_is_written(
    client: TestClient,
    world: World,
    factory: Factory,
    source: object,
    code: str,
    field: str,
    says: str | None,
) -> None:
    before = factory.value("select count(*) from notebooks")
    problem = await refused(await create(client, world, source), 400, code, field)
    if says is not None:
        assert says in problem["detail"], problem
    assert factory.value("select count(*) from notebooks") == before
    assert factory.value("select count(*) from notebook_seeds") == 0


async def test_a_file_over_the_limit_once_converted_is_refused(
    client: TestClient, world: World, factory: Factory
) -> None:
    # Under the 1 MiB body, over the file's 512 KiB once a notebook.
    line = "x = 1  # " + "a" * 90 + "\n"
    script = line * (MAX_FILE_BYTES // len(line) + 10)
    problem = await refused(
        await create(client, world, {"format": "py", "content": script}),
        400,
        "invalid_length",
        "source.content",
    )
    assert "512 KiB" in problem["detail"]
    assert factory.value("select count(*) from notebook_seeds") == 0


async def test_the_source_goes_with_its_notebook(
    client: TestClient, world: World, factory: Factory
) -> None:
    resp = await create(client, world, {"format": "py", "content": MARIMO_FILE})
    nid = (await body_of(resp))["item"]["notebookId"]
    # The reconciler removes a deleted notebook's row; its source goes with it.
    factory.conn.execute("delete from notebooks where id = %s", (nid,))
    assert seed_of(factory, nid) is None


# About 1.5 s of Marimo's work (bench/README.md "Starting from a file": 0.3 ms
# a line): well past the short limits below, well under the API's 15 s.
SLOW = {"format": "py", "content": "x = 1\n" * 5_000}


async def test_a_file_too_slow_to_convert_is_refused_and_the_next_one_converts(
    client: TestClient, world: World, factory: Factory
) -> None:
    """The conversion runs in a child process, given up (and the child
    replaced) past its time; the API answers meanwhile."""
    await created_seed(client, world, factory, {"format": "py", "content": MARIMO_FILE})
    converter = client.server.app[CONVERTER]
    converter.timeout = 0.5  # the child is up: this is the file's own time
    pending = asyncio.ensure_future(create(client, world, SLOW))
    answered_meanwhile = 0
    while not pending.done():
        resp = await client.get("/api/v1/me", headers=world.owner.auth)
        assert resp.status == 200
        answered_meanwhile += not pending.done()
        await asyncio.sleep(0.05)
    assert answered_meanwhile > 0  # the event loop was not held by the conversion
    problem = await refused(await pending, 400, "invalid_source", "source.content")
    assert "took longer than 0.5 s to convert" in problem["detail"]
    converter.timeout = 15
    seed = await created_seed(client, world, factory, {"format": "py", "content": MARIMO_FILE})
    assert seed == MARIMO_FILE


async def until_converting(client: TestClient) -> Any:
    """The converter's child, once it has a file in hand."""
    converter = client.server.app[CONVERTER]
    while True:
        if converter._turn.locked() and converter._child is not None:
            return converter._child
        await asyncio.sleep(0.01)


async def test_a_converter_killed_mid_file_is_a_503_to_retry_and_is_replaced(
    client: TestClient, world: World, factory: Factory
) -> None:
    pending = asyncio.ensure_future(create(client, world, SLOW))
    child = await until_converting(client)
    child.kill()  # the OOM killer, a signal, the server stopping
    resp = await pending
    problem = await refused(resp, 503, "converter_unavailable")
    assert resp.headers["Retry-After"] == "5"
    assert factory.value("select count(*) from notebook_seeds") == 0
    seed = await created_seed(client, world, factory, {"format": "py", "content": MARIMO_FILE})
    assert seed == MARIMO_FILE and problem["detail"].endswith("retry.")


async def test_a_file_waits_its_turn_for_so_long_then_is_a_503_to_retry(
    client: TestClient, world: World, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "QUEUE_SECONDS", 0.2)
    first = asyncio.ensure_future(create(client, world, SLOW))
    await until_converting(client)
    await refused(
        await create(client, world, {"format": "py", "content": "x = 1"}), 503, "converter_busy"
    )
    assert (await first).status == 201


async def test_the_converter_child_gets_none_of_the_apis_secrets(
    client: TestClient, world: World, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEBOOKS_SECRET_KEY", "not-for-the-child")
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db/x")
    await created_seed(client, world, factory, {"format": "py", "content": MARIMO_FILE})
    child = client.server.app[CONVERTER]._child
    assert child is not None
    env = psutil.Process(child.pid).environ()
    assert "NOTEBOOKS_SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert env["PATH"] == os.environ["PATH"]
