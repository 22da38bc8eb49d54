"""Kubernetes label selectors, as the API server reads them."""

from __future__ import annotations

import re
from collections.abc import Callable

Match = Callable[[dict[str, str]], bool]

_SET = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def _requirement(text: str) -> Match:
    if m := _EQ.match(text):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _SET.match(text):
        neg, key, op, values = m.groups()
        if op:
            allowed = {v.strip() for v in values.split(",")}
            if op == "in":
                return lambda labels: labels.get(key) in allowed
            return lambda labels: labels.get(key) not in allowed
        if neg:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise ValueError(f"unable to parse requirement: {text!r}")


def parse(selector: str | None) -> Match:
    reqs = [_requirement(p) for p in _split(selector or "")]
    return lambda labels: all(r(labels) for r in reqs)
