"""Files and directories of the data directory that only the stack's user
may read or change: notebooks, run state, secrets, locks. Their modes are
set here, never left to the umask (under `umask 000` another user of the
host could otherwise swap a notebook's file or the signing keys)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


def private_dir(path: Path) -> Path:
    """`mkdir -p` where every directory created is 0700 (a plain
    `mkdir(parents=True)` gives the parents the umask's mode)."""
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    return path


def write_private_json(path: Path, data: object, *, indent: int | None = None) -> None:
    """Write JSON readable by the owner only, atomically (a reader never sees
    half of it, a write cut short leaves the old one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")
    os.chmod(tmp, 0o600)  # an older file of that name may have had another mode
    os.replace(tmp, path)


def keep_others_out(path: Path) -> str | None:
    """Take group and other write permission off `path`, a directory of
    ours (an older install made under a loose umask: 0775 under umask 002);
    read and search stay (run as root, the embedded PostgreSQL's own user
    must reach its data under it). Why it cannot be done, or None."""
    info = path.stat()
    loose = stat.S_IMODE(info.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
    if not loose:
        return None
    if info.st_uid != os.geteuid():
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"{path} is writable by its group or others (mode {mode:o}) and belongs to "
            f"another user (uid {info.st_uid}): chmod go-w {path}"
        )
    path.chmod(stat.S_IMODE(info.st_mode) & ~loose)
    return None
