"""Environment variables that are the platform's, whatever a workload
config's `env` says: what it sets on Sail or Marimo (where Sail is, its
mode, the home directory, Marimo's update check) and all of Sail's cluster
settings (the worker cap, the namespace, the pod template). The API refuses
them in a config (400 `reserved_name`); both runtimes drop them from the
config's env as well, so a row written before that rule, or by another
path, cannot lift the worker cap or point Sail elsewhere. Compared in upper
case: what some library would read case-insensitively is refused either way."""

from __future__ import annotations

PLATFORM_ENV = frozenset({"HOME", "SPARK_REMOTE", "MARIMO_SKIP_UPDATE_CHECK", "SAIL_MODE"})
PLATFORM_ENV_PREFIXES = ("SAIL_CLUSTER__", "SAIL_KUBERNETES__")


def platform_env_key(key: str) -> bool:
    upper = key.upper()
    return upper in PLATFORM_ENV or upper.startswith(PLATFORM_ENV_PREFIXES)


def user_env(env: dict[str, str]) -> dict[str, str]:
    """A workload config's env without the platform's keys."""
    return {k: v for k, v in env.items() if not platform_env_key(k)}
