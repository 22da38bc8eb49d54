"""What the kubelet does to a container's env values before the process
sees them (the emulator runs no containers, so it does not model this).

The documented rule (Kubernetes API reference, EnvVar.value): "Variable
references $(VAR_NAME) are expanded using the previously defined environment
variables in the container and any service environment variables. If a
variable cannot be resolved, the reference in the input string will be
unchanged. Double $$ are reduced to a single $, which allows for escaping the
$(VAR_NAME) syntax". The algorithm is the kubelet's
(kubernetes/third_party/forked/golang/expansion/expand.go): `$` followed by
`$` gives `$`; by `(` up to the next `)` a reference, replaced when the name
is defined, else kept as written; an unclosed `$(` is kept; `$` followed by
anything else, or at the end, is kept."""

from __future__ import annotations

from typing import Any


def expand(value: str, defined: dict[str, str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            rest = value[cursor + 1 :]
            if rest[0] == "$":  # escaped operator
                read, advance = "$", 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:  # incomplete reference: kept
                    read, advance = "$(", 1
                else:
                    name = rest[1:close]
                    read = defined.get(name, f"$({name})")
                    advance = close + 1
            else:  # not a reference: the operator and the next character, kept
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(value[checkpoint:])
    return "".join(out)


def process_env(
    container: dict[str, Any],
    field_values: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """The environment the container's process starts with: first each
    `envFrom` Secret's keys (from `secrets`, by name), taken as they are;
    then the env list in order, over those, each value expanded against the
    variables defined before it (`enableServiceLinks: false`, so no service
    variables); `valueFrom` field references read from `field_values` (e.g.
    status.podIP). Without `secrets`, `envFrom` is left out (what the
    caller reads does not come from one); with them, a Secret named and not
    given fails, as the pod would."""
    fields = field_values or {}
    env: dict[str, str] = {}
    for source in container.get("envFrom") or [] if secrets is not None else []:
        env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = fields.get(var["valueFrom"]["fieldRef"]["fieldPath"], "")
    return env
