"""What every `ras` command shares: exit codes, one-line errors, JSON or rich output, running async code.

Exit codes: 0 done (or healthy); 1 the operation failed (an unknown id, an event still failing, a
dependency reported unhealthy, servers not running, the database not migrated); 2 a usage error (typer's);
3 a dependency could not be reached (PostgreSQL, Kafka). `ras health` reports what it cannot reach in its
table and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine, Iterable, Sequence
from typing import Annotated, Any, NoReturn, TextIO, TypeVar

import typer
from rich.console import Console
from rich.table import Table

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


class _CurrentStderr:
    """A stream that writes to whatever sys.stderr is now (a test runner swaps it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


current_stderr: TextIO = _CurrentStderr()  # type: ignore[assignment]  # write and flush are all logging uses


def fail(message: str, code: int = FAILED) -> NoReturn:
    """An expected failure: one line on stderr, no traceback, and the exit code."""
    stderr.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body; an unreachable dependency becomes one line and exit code 3."""
    try:
        return asyncio.run(coroutine)
    except typer.Exit:
        raise
    except (OSError, TimeoutError) as error:  # includes ConnectionRefusedError
        fail(f"unreachable: {_one_line(error)}", UNREACHABLE)
    except Exception as error:
        if _is_connection_failure(error):
            fail(f"unreachable: {_one_line(error)}", UNREACHABLE)
        if missing := _missing_table(error):
            fail(f"the database is not migrated (run `ras migrate`): {missing}")
        raise


def _is_connection_failure(error: BaseException) -> bool:
    """SQLAlchemy wraps a refused connection in an OperationalError/InterfaceError; aiokafka raises its own."""
    from aiokafka.errors import KafkaConnectionError
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(error, KafkaConnectionError | OperationalError | InterfaceError):
        return True
    cause = error.__cause__ or error.__context__
    return isinstance(cause, OSError | TimeoutError)


def _missing_table(error: BaseException) -> str | None:
    """PostgreSQL's message when a table does not exist (the schema was never migrated), else None."""
    from sqlalchemy.exc import ProgrammingError

    if isinstance(error, ProgrammingError) and getattr(error.orig, "sqlstate", None) == UNDEFINED_TABLE:
        return _one_line(error.orig or error)
    return None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def emit_json(payload: Any) -> None:
    """JSON for scripts: plain print, never wrapped or coloured."""
    print(json.dumps(payload, ensure_ascii=False, default=str), file=sys.stdout)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    shown = Table(title=title, title_justify="left")
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*("-" if cell is None else str(cell) for cell in row))
    return shown
