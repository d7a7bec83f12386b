"""Running `ras` in-process with typer's CliRunner from async tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner, Result

from result_aggregator_service.cli.main import app


async def ras(*argv: str, env: dict[str, str] | None = None) -> Result:
    """`ras ARGV...` in a thread (each command runs its own event loop); settings come from os.environ
    (the stack's three variables) unless `env` overrides them."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, list(argv), env=env))


def json_of(result: Result) -> Any:
    assert result.stdout.strip(), f"no output; exit {result.exit_code}; stderr: {result.stderr}"
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    """The expected-failure form: exactly one `error: ...` line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]
