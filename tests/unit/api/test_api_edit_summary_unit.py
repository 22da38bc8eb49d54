"""What a notebook's history says an edit changed (api/notebooks.py edit_summary)."""

from __future__ import annotations

from api.notebooks import edit_summary

BEFORE = {
    "name": "Churn",
    "description": "",
    "idle_timeout_seconds": 3600,
    "detached_timeout_seconds": 14400,
    "workload_config_id": "SMALL",
}
CONFIGS = {"SMALL": "small", "BIG": "big"}


def test_nothing_changed_says_nothing() -> None:
    assert edit_summary(BEFORE, {}, CONFIGS) is None
    same = {"name": "Churn", "description": "", "idleTimeoutSeconds": 3600}
    assert edit_summary(BEFORE, {**same, "workloadConfigId": "SMALL"}, CONFIGS) is None


def test_each_change_in_a_members_words() -> None:
    assert edit_summary(BEFORE, {"name": "Churn v2"}, CONFIGS) == "Renamed from “Churn”"
    assert edit_summary(BEFORE, {"description": "x" * 2000}, CONFIGS) == "Description edited"
    assert edit_summary(BEFORE, {"idleTimeoutSeconds": 450}, CONFIGS) == "Idle timeout 1 h → 450 s"
    assert edit_summary(BEFORE, {"detachedTimeoutSeconds": 0}, CONFIGS) == (
        "Detached timeout 4 h → never"
    )
    assert edit_summary(
        {**BEFORE, "idle_timeout_seconds": 0}, {"idleTimeoutSeconds": 600}, CONFIGS
    ) == ("Idle timeout never → 10 min")
    assert (
        edit_summary(BEFORE, {"workloadConfigId": "BIG"}, CONFIGS) == "Workload config small → big"
    )


def test_several_changes_are_one_line_in_a_fixed_order() -> None:
    body = {"workloadConfigId": "BIG", "name": "New", "idleTimeoutSeconds": 7200}
    assert edit_summary(BEFORE, body, CONFIGS) == (
        "Renamed from “Churn”; idle timeout 1 h → 2 h; workload config small → big"
    )
