"""`python -m local_stack up|down|status|env` (also the `stack` console script)."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from types import ModuleType

from local_stack import kafka, postgres, prometheus, redis, state, system
from local_stack.state import ENV_KEYS, PROMETHEUS_KEY, StackError

SERVERS: tuple[ModuleType, ...] = (kafka, postgres, redis, prometheus)


class StackFailed(RuntimeError):
    """`up` failed; the message holds every failing part's reason and log tail."""

    def __init__(self, errors: list[StackError]) -> None:
        super().__init__("\n".join(e.report() for e in errors))
        self.errors = errors


@contextmanager
def _locked() -> Iterator[None]:
    """One `up`/`down` at a time (parallel test workers may call ensure_stack together)."""
    folder = state.state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _in_parallel(calls: list[Callable[[], object]]) -> list[StackError]:
    errors: list[StackError] = []
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        for future in [pool.submit(call) for call in calls]:
            try:
                future.result()
            except StackError as exc:
                errors.append(exc)
            except Exception as exc:
                errors.append(StackError("stack", f"{type(exc).__name__}: {exc}"))
    return errors


def _install_missing() -> None:
    missing = []
    if postgres.bin_dir() is None:
        missing.append("postgresql")
    if redis.binary() is None:
        missing.append("redis-server")
    if prometheus.binary() is None:
        missing.append("prometheus")
    try:
        system.apt_install("packages", missing)
    except StackError as exc:
        raise StackFailed([exc]) from exc


def up() -> dict[str, str]:
    """Start (or reuse) Kafka, PostgreSQL, Redis and Prometheus; write and return the env settings."""
    with _locked():
        _install_missing()
        ports = state.allocate_ports([name for server in SERVERS for name in server.PORTS])
        errors = _in_parallel([partial(server.up, ports) for server in SERVERS])
        if errors:
            raise StackFailed(errors)
        values = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers(ports["kafka"]),
            "DATABASE_URL": postgres.url(ports["postgres"]),
            "REDIS_URL": redis.url(ports["redis"]),
            PROMETHEUS_KEY: prometheus.url(ports["prometheus"]),
        }
        path = state.write_env_file(values)
        state.say("stack", f"ready; settings in {path}")
        return values


def down(purge: bool = False) -> None:
    """Stop exactly what `up` started (by pid); with purge, delete the state folder too."""
    with _locked():
        errors = _in_parallel([server.down for server in SERVERS])
        if errors:
            raise StackFailed(errors)
        if purge:
            shutil.rmtree(state.state_dir(), ignore_errors=True)
            state.say("stack", f"removed {state.state_dir()}")


def ensure_prometheus() -> str:
    """The URL of the local stack's Prometheus, started (or reused) alone: it scrapes processes on this
    machine whichever Kafka, PostgreSQL and Redis they use."""
    with _locked():
        _install_missing()
        ports = state.allocate_ports(prometheus.PORTS)
        try:
            prometheus.up(ports)
        except StackError as exc:
            raise StackFailed([exc]) from exc
        return prometheus.url(ports["prometheus"])


def restart(name: str, downtime_seconds: float = 0.0) -> None:
    """Stop one server (`kafka`, `postgres` or `redis`) and start it again on the same ports with its data
    (Redis keeps none): a fault for tests. Blocks until it answers again."""
    server = next(server for server in SERVERS if name == server.NAME)
    with _locked():
        server.down()
        time.sleep(downtime_seconds)
        server.up(state.load_ports())


def ensure_stack() -> dict[str, str]:
    """The three settings: taken from os.environ when ALL are set there (nothing is
    started), else from the local stack, started or reused with `up`."""
    if all(os.environ.get(key) for key in ENV_KEYS):
        return {key: os.environ[key] for key in ENV_KEYS}
    return up()


def status() -> list[tuple[str, bool, int | None, int | None]]:
    """Per server: name, running, pid, port."""
    return [(server.NAME, *server.status()) for server in SERVERS]


def _status() -> int:
    rows = status()
    for name, running, pid, port in rows:
        word = "running" if running else "stopped"
        print(f"{name:<10} {word:<8} pid {pid or '-':<8} port {port or '-'}")
    path = state.env_file()
    print(f"env file   {path}{'' if path.is_file() else ' (missing)'}")
    return 0 if all(running for _, running, _, _ in rows) else 1


def _env() -> int:
    values = state.read_env_file()
    if not values:
        print(
            f"no env file at {state.env_file()}; run `python -m local_stack up`",
            file=sys.stderr,
        )
        return 1
    for key, value in values.items():
        print(f"export {key}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description="Local Kafka + PostgreSQL + Redis + Prometheus.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start (or reuse) the servers; write the env file")
    down_cmd = commands.add_parser("down", help="stop the servers started by `up`")
    down_cmd.add_argument("--purge", action="store_true", help="also delete the state folder")
    commands.add_parser("status", help="per server: running/stopped, pid, port")
    commands.add_parser("env", help="print `export KEY=VALUE` lines of the env file")
    targets_cmd = commands.add_parser("targets", help="point Prometheus at a role's metrics address(es)")
    targets_cmd.add_argument("role", choices=prometheus.ROLES)
    targets_cmd.add_argument("address", nargs="+", help="host:port of the role's /metrics")
    args = parser.parse_args(argv)
    # the broker refuses connections while it starts; those retries are expected
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down(purge=args.purge)
        elif args.command == "status":
            return _status()
        elif args.command == "targets":
            print(prometheus.write_targets(args.role, args.address))
        else:
            return _env()
    except StackFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0
