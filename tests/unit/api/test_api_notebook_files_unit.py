"""A downloaded notebook file's name (api/notebook_files.py): the notebook's
name, safe as a plain file name and in full as `filename*`."""

from __future__ import annotations

import pytest

from api.notebook_files import disposition, download_name


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("Revenue forecast", "Revenue_forecast.py"),
        ("etl.py", "etl.py"),  # not etl.py.py
        ("ETL.PY", "ETL.py"),
        ("Über Umsätze", "ber_Ums_tze.py"),
        (".hidden", "hidden.py"),
        ("../../etc/passwd", "etc_passwd.py"),
        ('a"b\r\nSet-Cookie: x=1', "a_b_Set-Cookie_x_1.py"),
        ("   ", "notebook.py"),
        ("✓✓✓", "notebook.py"),
        ("x" * 300, "x" * 100 + ".py"),
    ],
)
def test_a_download_is_named_after_its_notebook(name: str, file: str) -> None:
    assert download_name(name) == file
    header = disposition(name)
    assert header.startswith(f"attachment; filename=\"{file}\"; filename*=UTF-8''")
    assert "\r" not in header and "\n" not in header


def test_the_full_name_is_percent_encoded() -> None:
    assert disposition("Über / Q3").endswith("filename*=UTF-8''%C3%9Cber%20%2F%20Q3.py")
    assert disposition("etl.py").endswith("filename*=UTF-8''etl.py")
