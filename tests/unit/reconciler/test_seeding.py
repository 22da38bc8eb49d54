"""The program that writes a notebook's file as a session starts
(reconciler/runtime/seeding.py): the local runtime's call and the
Kubernetes init container's `python -c` (tests/unit/kubernetes/
test_k8s_objects.py runs it so). Restores: docs/api.md "Restoring a version"."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.runtime import seeding

RESTORED = b"# the version restored\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_a_seed_without_a_restore_is_written_only_where_there_is_no_file(tmp_path: Path) -> None:
    path = str(tmp_path / "notebook.py")
    assert seeding.seed(path, b"first\n", mode=0o600) == "written"
    assert (tmp_path / "notebook.py").stat().st_mode & 0o777 == 0o600
    assert seeding.seed(path, b"second\n") == "kept"
    assert files(tmp_path) == {"notebook.py": b"first\n"}  # written whole, renamed


def test_a_restore_replaces_a_kept_copy_and_keeps_anything_else_beside(tmp_path: Path) -> None:
    path = tmp_path / "notebook.py"
    path.write_bytes(b"the newest copy\n")
    replaces = " ".join((sha(b"an earlier restore\n"), sha(b"the newest copy\n")))
    assert seeding.seed(str(path), RESTORED, replaces, "S1") == "restored"
    assert files(tmp_path) == {".restored-S1": b"", "notebook.py": RESTORED}

    # The next session's restore, over edits no copy has (a failed stop's
    # copy): kept beside, and an earlier session's marker goes.
    path.write_bytes(b"edits no copy has\n")
    assert seeding.seed(str(path), b"older\n", sha(RESTORED), "S2") == (
        "restored, the file there kept beside as notebook-before-restore-S2.py"
    )
    assert files(tmp_path) == {
        ".restored-S2": b"",
        "notebook-before-restore-S2.py": b"edits no copy has\n",
        "notebook.py": b"older\n",
    }


def test_a_restore_is_written_once_per_session(tmp_path: Path) -> None:
    """A retry cut short, or a pod's init container run again after the
    member edited: the restore is not done twice, nothing is moved twice."""
    path = tmp_path / "notebook.py"
    path.write_bytes(b"the newest copy\n")
    replaces = sha(b"the newest copy\n")
    seeding.seed(str(path), RESTORED, replaces, "S1")
    (tmp_path / ".restored-S1").unlink()  # cut short before its marker
    assert seeding.seed(str(path), RESTORED, replaces, "S1") == "restored already"
    path.write_bytes(b"edited since\n")
    assert seeding.seed(str(path), RESTORED, replaces, "S1") == "kept"
    assert files(tmp_path) == {".restored-S1": b"", "notebook.py": b"edited since\n"}
    # Its storage lost within the session: the file comes back, nothing moved.
    path.unlink()
    assert seeding.seed(str(path), RESTORED, replaces, "S1") == "written"
    assert path.read_bytes() == RESTORED


def test_a_file_kept_beside_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "notebook-before-restore-S1.py").write_bytes(b"kept before\n")
    path = tmp_path / "notebook.py"
    path.write_bytes(b"more edits\n")
    seeding.seed(str(path), RESTORED, sha(b"something else\n"), "S1")
    assert files(tmp_path)["notebook-before-restore-S1.py"] == b"kept before\n"
    assert files(tmp_path)["notebook-before-restore-S1-2.py"] == b"more edits\n"


def test_a_large_file_is_compared_by_its_digest_a_chunk_at_a_time(tmp_path: Path) -> None:
    big = b"x" * (seeding.CHUNK * 3 + 7)
    path = tmp_path / "notebook.py"
    path.write_bytes(big)
    assert seeding.seed(str(path), RESTORED, sha(big), "S1") == "restored"
    assert files(tmp_path) == {".restored-S1": b"", "notebook.py": RESTORED}


def test_the_program_imports_only_the_standard_library() -> None:
    source = Path(seeding.__file__).read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith("import ")}
    froms = {line.split()[1] for line in source.splitlines() if line.startswith("from ")}
    assert imports == {"hashlib", "os", "sys"} and froms == {"__future__"}
