"""Writes a notebook's file as a session starts: the template, the file it
was brought as, the copy kept of it (its storage was lost), or a version
being restored (docs/api.md "Restoring a version").

One logic for both runtimes: the local runtime calls `seed`; on Kubernetes
this module's own source is the seeding init container's `python -c`, run
with `main` (so it imports nothing but the standard library, and holds no
dollar-parenthesis: the kubelet expands those in a command).
"""

from __future__ import annotations

import hashlib
import os
import sys

CHUNK = 1 << 16


def aside_name(session_id: str) -> str:
    """Where a restore keeps a file it would overwrite, beside the notebook."""
    return f"notebook-before-restore-{session_id}.py"


def _restored_marker(path: str, session_id: str) -> str:
    """Says the session's restore is written: a pod's init container runs
    again when its sandbox is made again (a node's restart), by then over
    the member's edits, which a second restore would move aside."""
    return os.path.join(os.path.dirname(path), f".restored-{session_id}")


def _digest(path: str) -> str:
    """The file's SHA-256, read a chunk at a time (a pod's small memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _free(path: str) -> str:
    """`path`, or `path` numbered, whichever names no file: never overwritten."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{stem}-{n}{ext}"
    return candidate


def _write(path: str, data: bytes, mode: int) -> None:
    """Whole or not at all: written beside and renamed, so a write cut short
    (a full disk, a kill) leaves no truncated file, and a retry finds either
    the old file or the new."""
    partial = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(partial, mode)  # an older partial keeps its mode through O_CREAT
    os.replace(partial, path)


def seed(
    path: str,
    data: bytes,
    replaces: str | None = None,
    session_id: str = "",
    mode: int = 0o644,
) -> str:
    """Write `data` at `path` where there is no file. With `replaces` (a
    restore: the SHA-256s, space-separated, of the files the platform kept
    that it may replace), over the file there too, once per session: a file
    that is none of those holds edits no kept copy has, and is moved beside
    it first (`aside_name`), never overwritten. What it did, for the log."""
    marker = _restored_marker(path, session_id)
    if replaces is None or os.path.exists(marker):
        if os.path.exists(path):
            return "kept"
        _write(path, data, mode)
        return "written"
    did = "restored"
    if os.path.exists(path):
        found = _digest(path)
        if found == hashlib.sha256(data).hexdigest():
            did = "restored already"  # a retry cut short before its marker
        else:
            if found not in replaces.split():
                aside = _free(os.path.join(os.path.dirname(path), aside_name(session_id)))
                os.replace(path, aside)
                did = "restored, the file there kept beside as " + os.path.basename(aside)
            _write(path, data, mode)
    else:
        _write(path, data, mode)
    _write(marker, b"", mode)
    for name in os.listdir(os.path.dirname(marker) or "."):  # an earlier session's: done with
        if name.startswith(".restored-") and name != os.path.basename(marker):
            os.remove(os.path.join(os.path.dirname(marker), name))
    return did


def main(argv: list[str]) -> None:
    """`path [seed-file [replaces session-id]]`: no seed file, the template
    in NOTEBOOK_TEMPLATE."""
    path, rest = argv[0], argv[1:]
    if rest:
        with open(rest[0], "rb") as f:
            data = f.read()
    else:
        data = os.environ["NOTEBOOK_TEMPLATE"].encode("utf-8")
    replaces, session_id = (rest[1], rest[2]) if len(rest) == 3 else (None, "")
    print(seed(path, data, replaces, session_id))


if __name__ == "__main__":
    main(sys.argv[1:])
