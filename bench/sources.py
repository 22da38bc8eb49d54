"""Converting a notebook file a member brings (docs/api.md "Starting from a
file"): the time `POST /workloads/notebooks` with `source` spends converting,
through the API's own converter child process (`api.sources.Converter`), for
files of a realistic size and for the largest ones, against the same
conversion in this process (`api.sources.marimo_file`), the baseline, in the
same run. The ratio is what the child costs (one pipe round trip and a JSON
line each way); the absolute figures say how long a member waits.

Files: a hand-written-size Marimo notebook (kept as it is: parsed only), a
Jupyter notebook of 200 cells, a `# %%` script of 200 cells (jupytext), a
plain script of 2,000 lines, and one of 20,000 lines (near the 15 s limit's
side of what is sensible).

Usage: python bench/sources.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on the path, and its api.py
# (the API's benchmark) would stand for the `api` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from api.sources import CONVERT_TIMEOUT_SECONDS, Converter, marimo_file  # noqa: E402


def jupyter(cells: int) -> str:
    doc = {
        "cells": [
            {
                "cell_type": "code" if i % 4 else "markdown",
                "metadata": {},
                "source": [f"x{i} = {i}\n", f"y{i} = x{i} * 2\n"] if i % 4 else [f"## Step {i}\n"],
                **({"outputs": [], "execution_count": i} if i % 4 else {}),
            }
            for i in range(cells)
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(doc)


def percent_script(cells: int) -> str:
    return "".join(f"# %%\nx{i} = {i}\ny{i} = x{i} + 1\n\n" for i in range(cells))


def script(lines: int) -> str:
    return "".join(f"v{i} = {i} * 2\n" for i in range(lines))


def marimo_notebook(cells: int) -> str:
    body = "".join(
        f"\n\n@app.cell\ndef _():\n    x{i} = {i}\n    return (x{i},)\n" for i in range(cells)
    )
    return (
        'import marimo\n\n__generated_with = "0.25.2"\napp = marimo.App()\n'
        + body
        + '\n\nif __name__ == "__main__":\n    app.run()\n'
    )


FILES: list[tuple[str, dict[str, Any]]] = [
    ("Marimo notebook, 50 cells", {"format": "py", "content": marimo_notebook(50)}),
    ("Jupyter, 200 cells", {"format": "ipynb", "content": jupyter(200)}),
    ("# %% script, 200 cells", {"format": "py", "content": percent_script(200)}),
    ("script, 2,000 lines", {"format": "py", "content": script(2_000)}),
    ("script, 20,000 lines", {"format": "py", "content": script(20_000)}),
]


async def run(rounds: int) -> None:
    load = os.getloadavg()
    # Past the API's limit (CONVERT_TIMEOUT_SECONDS) here too, to see by how much.
    converter = Converter(timeout=120)
    tiny = {"format": "py", "content": "x = 1\n"}
    try:
        t0 = time.perf_counter()
        await converter.convert(tiny)  # the child's start and Marimo's import
        started = time.perf_counter() - t0
        for _, source in FILES:  # every format's imports, on both sides, before timing
            await converter.convert(source)
            marimo_file(source)
        rows = []
        for name, source in FILES:
            child, here = [], []
            for _ in range(rounds):  # interleaved, so load drifts hit both alike
                t = time.perf_counter()
                await converter.convert(source)
                child.append(time.perf_counter() - t)
                t = time.perf_counter()
                marimo_file(source)
                here.append(time.perf_counter() - t)
            size = len(source["content"].encode())
            rows.append((name, size, statistics.median(child), statistics.median(here)))
    finally:
        await converter.close()
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"{rounds} rounds, {os.cpu_count()} CPUs, load average before:", end=" ")
    print(" ".join(f"{x:.2f}" for x in load), "after:", end=" ")
    print(" ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"the first file (a line): {started * 1000:.0f} ms, the child's start and imports")
    print(f"the API refuses a file past {CONVERT_TIMEOUT_SECONDS:g} s of the child's time")
    print(f"{'file':<28} {'bytes':>9} {'child ms':>9} {'here ms':>9} {'child/here':>10}")
    for name, size, child_s, here_s in rows:
        print(
            f"{name:<28} {size:>9} {child_s * 1000:>9.1f} {here_s * 1000:>9.1f}"
            f" {child_s / here_s:>9.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
