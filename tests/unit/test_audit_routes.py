"""Every write outside notebooks is in the organization's audit (docs/api.md
"Audit"): a new administrative route must say what it records, or be named
here with why not."""

from __future__ import annotations

from api.routes import OPS

# Notebooks keep their own history (notebook_events: starts, edits, shares,
# offers, restores, deletes), and a webhook's test changes nothing.
NOT_AUDITED_OUTSIDE_NOTEBOOKS = {("POST", "/webhooks/{id}/test")}
NOTEBOOK_PATHS = ("/workloads/notebooks", "/workloads/deleted-notebooks")


def test_each_administrative_write_says_what_it_records() -> None:
    missing = {
        (op.method, op.path)
        for op in OPS
        if op.method != "GET" and op.audit is None and not op.path.startswith(NOTEBOOK_PATHS)
    }
    assert missing == NOT_AUDITED_OUTSIDE_NOTEBOOKS


def test_reads_and_notebooks_record_nothing_here() -> None:
    assert not [op.path for op in OPS if op.audit and op.method == "GET"]
    assert not [op.path for op in OPS if op.audit and op.path.startswith(NOTEBOOK_PATHS)]
