"""`notebooks`: the one entry point.

    notebooks up                 # everything on this machine (what `make run` runs)
    notebooks api|worker|proxy   # one process of the Procfile
    notebooks migrate            # apply migrations (the Procfile's release step)
    notebooks admin ...          # members, teams, tokens, workload configs

The api, worker and proxy packages are imported inside their subcommand, so
the rest of the command line works without them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import psycopg

from cli import admin
from cli.database import CliError, database_for
from common.logging import configure_logging
from common.settings import Settings, SettingsError, port_or_off
from sql.migrate import MigrationError


def _settings(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _entry(module: str, function: str = "main") -> Callable[..., Any]:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise CliError(f"{module} is not available in this build ({e})") from None
        raise
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise CliError(f"{module}.{function} is not available in this build")
    return fn  # type: ignore[no-any-return]


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run an entry point that may be sync or async; its int result is the exit code."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result if isinstance(result, int) else 0


async def _await(awaitable: Any) -> Any:
    return await awaitable


def cmd_up(args: argparse.Namespace, env: dict[str, str]) -> int:
    from cli.up import run_up

    return run_up(env)


def cmd_api(args: argparse.Namespace, env: dict[str, str]) -> int:
    return _call(_entry("api.app"), _settings(env))


def metrics_port(flag: str | None, env: dict[str, str]) -> int | None:
    """--metrics-port, else NOTEBOOKS_WORKER_METRICS_PORT, else 8082; `off` serves none."""
    what = "--metrics-port" if flag else "NOTEBOOKS_WORKER_METRICS_PORT"
    try:
        return port_or_off(
            flag or env.get("NOTEBOOKS_WORKER_METRICS_PORT") or "8082",
            f"{what} (the worker's metrics port)",
        )
    except SettingsError as e:
        raise CliError(str(e)) from None


def cmd_worker(args: argparse.Namespace, env: dict[str, str]) -> int:
    port = metrics_port(args.metrics_port, env)
    return _call(_entry("reconciler.worker"), _settings(env), metrics_port=port)


def cmd_proxy(args: argparse.Namespace, env: dict[str, str]) -> int:
    return _call(_entry("proxy.serve"), _settings(env))


def cmd_migrate(args: argparse.Namespace, env: dict[str, str]) -> int:
    from sql.migrate import migrate

    configure_logging(
        env.get("NOTEBOOKS_LOG_FORMAT", "auto"), env.get("NOTEBOOKS_LOG_LEVEL", "info")
    )
    with database_for(env, create=True) as url:
        applied = asyncio.run(migrate(url))
    print(f"migrations applied: {applied or 'none (up to date)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notebooks", description="Hosted Marimo notebooks on Sail."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "up", help="run everything on this machine (embedded PostgreSQL unless DATABASE_URL)"
    ).set_defaults(func=cmd_up)
    sub.add_parser("api", help="run the REST API").set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="run a reconciler worker")
    worker.add_argument(
        "--metrics-port",
        default=None,
        metavar="PORT|off",
        help="Prometheus port (default NOTEBOOKS_WORKER_METRICS_PORT or 8082; off: none)",
    )
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("proxy", help="run the session proxy").set_defaults(func=cmd_proxy)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    admin.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    try:
        return int(args.func(args, env))
    except (CliError, SettingsError, MigrationError) as e:
        print(f"notebooks {args.command}: error: {e}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as e:
        # libpq's own words (checked_database_url keeps the password out of
        # them): unreachable, refused, authentication failed, ...
        why = " ".join(str(e).split())  # libpq's lines (one per address tried) as one
        print(f"notebooks {args.command}: error: cannot use the database: {why}", file=sys.stderr)
        return 1
    except OSError as e:
        # A read-only or full data directory, a file that cannot be read.
        where = f": {e.filename}" if e.filename else ""
        print(f"notebooks {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
