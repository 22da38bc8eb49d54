"""What `notebooks up` says once it is up."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.up import banner, unsaved_warning
from common.settings import Settings

REQUIRED = {
    "DATABASE_URL": "postgresql:///x",
    "NOTEBOOKS_SECRET_KEY": "m" * 40,
    "NOTEBOOKS_SIGNING_KEYS": "k1:" + "s" * 40,
}


@pytest.mark.parametrize(
    ("data_dir", "under"),
    [("/tmp/nb", "/tmp"), ("/tmp", "/tmp"), ("/var/folders/xy/T/nb", "/var/folders")],
)
def test_a_data_directory_marimo_takes_for_temporary_is_warned_about(
    data_dir: str, under: str
) -> None:
    """Marimo's editor never saves a notebook whose path starts so (Save
    disabled, no autosave): the work was lost at the next stop, silently."""
    warning = unsaved_warning(Path(data_dir))
    assert warning is not None and f"is under {under}: Marimo will not save" in warning
    settings = Settings.from_env(REQUIRED)
    shown = banner(settings, "nbk_x", Path(data_dir) / "credentials.json", {})
    assert "WARNING:" in shown and "NOTEBOOKS_DATA_DIR" in shown


@pytest.mark.parametrize("data_dir", ["/srv/notebooks", "/home/ann/tmp/nb", "/tmpfoo/nb"])
def test_other_data_directories_get_no_warning(data_dir: str) -> None:
    assert unsaved_warning(Path(data_dir)) is None
    shown = banner(Settings.from_env(REQUIRED), "nbk_x", Path(data_dir) / "credentials.json", {})
    assert "WARNING" not in shown
