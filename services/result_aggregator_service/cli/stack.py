"""`ras stack up|down|status|env|targets`: the local Kafka, PostgreSQL and Redis (libs/local_stack does the work)."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from local_stack import cli as local_stack
from local_stack import prometheus, state
from result_aggregator_service.cli.output import FAILED, OK, USAGE, JsonFlag, emit_json, fail, stdout, table

app = typer.Typer(help="The local Kafka, PostgreSQL and Redis (no Docker needed).", no_args_is_help=True)


@app.command()
def up(as_json: JsonFlag = False) -> None:
    """Start (or reuse) the servers and write .local-stack/stack.env."""
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        try:
            values = local_stack.up()
        except local_stack.StackFailed as failed:
            fail("local stack: " + "; ".join(_described(error) for error in failed.errors))
    if as_json:
        emit_json(values)


@app.command()
def down(purge: bool = typer.Option(False, "--purge", help="also delete the state folder")) -> None:
    """Stop exactly what `up` started, by pid."""
    try:
        local_stack.down(purge=purge)
    except local_stack.StackFailed as failed:
        fail("local stack: " + "; ".join(_described(error) for error in failed.errors))


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Per server: running or stopped, pid, port. Exit 1 unless all run."""
    rows = local_stack.status()
    env_file = state.env_file()
    if as_json:
        servers = [{"name": n, "running": r, "pid": pid, "port": port} for n, r, pid, port in rows]
        emit_json({"servers": servers, "env_file": str(env_file) if env_file.is_file() else None})
    else:
        shown = [(name, "running" if running else "stopped", pid, port) for name, running, pid, port in rows]
        stdout.print(table(None, ("server", "state", "pid", "port"), shown))
        stdout.print(f"env file: {env_file}{'' if env_file.is_file() else ' (missing)'}", markup=False)
    raise typer.Exit(OK if all(running for _, running, _, _ in rows) else FAILED)


@app.command()
def env(as_json: JsonFlag = False) -> None:
    """The connection settings of the last `up`, as `export KEY=VALUE` lines: eval "$(ras stack env)"."""
    values = state.read_env_file()
    if not values:
        fail(f"no env file at {state.env_file()}; run `ras stack up`")
    if as_json:
        emit_json(values)
        return
    for key, value in values.items():
        print(f"export {key}={value}")


@app.command()
def targets(
    role: Annotated[str, typer.Argument(help=f"one of {', '.join(prometheus.ROLES)}")],
    addresses: Annotated[list[str], typer.Argument(help="host:port of the role's /metrics")],
) -> None:
    """Point the stack's Prometheus at a role's metrics address(es)."""
    if role not in prometheus.ROLES:
        fail(f"unknown role {role!r}; one of {', '.join(prometheus.ROLES)}", code=USAGE)
    stdout.print(str(prometheus.write_targets(role, addresses)), markup=False)


def _described(error: state.StackError) -> str:
    logs = ", ".join(str(log) for log in error.logs)
    return f"{error} (log: {logs})" if logs else str(error)
