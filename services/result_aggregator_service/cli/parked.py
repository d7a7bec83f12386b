"""`ras parked list|summary|show|replay|discard`: the operator's view of bad input (brief, rule 7)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.progress import Progress

from result_aggregator_service.cli.output import FAILED, JsonFlag, emit_json, fail, run, stderr, stdout, table

if TYPE_CHECKING:
    from dishka import AsyncContainer

    from result_aggregator_service.adapters.parked_events import ParkedFilter
    from result_aggregator_service.cli.parked_ops import Outcome

app = typer.Typer(help="Parked events: bad input kept with its raw bytes until replayed or discarded.")


class State(StrEnum):
    parked = "parked"
    replayed = "replayed"
    discarded = "discarded"


class Reason(StrEnum):  # the values of service_layer.ports.ParkReason
    undecodable = "undecodable"
    schema_invalid = "schema_invalid"
    unknown_topic = "unknown_topic"
    rejected = "rejected"
    internal = "internal"


T = TypeVar("T")
_WHEN_HELP = "ISO-8601 time (UTC unless it says) or an age such as 30m, 2h, 7d"
Topic = Annotated[str | None, typer.Option(help="only this topic")]
ReasonOption = Annotated[Reason | None, typer.Option(help="only this reason")]
Since = Annotated[str | None, typer.Option(help=f"parked at or after: {_WHEN_HELP}")]
Until = Annotated[str | None, typer.Option(help=f"parked before: {_WHEN_HELP}")]
Ids = Annotated[list[int] | None, typer.Argument(help="parked event ids", show_default=False)]
All = Annotated[bool, typer.Option("--all", help="every parked event matching the filters (none: all of them)")]


@app.command("list")
def list_(
    state: State = State.parked,
    topic: Topic = None,
    reason: ReasonOption = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    after: Annotated[int, typer.Option(min=0, help="next page: ids greater than this")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Parked events, oldest first."""
    from result_aggregator_service.cli import parked_ops

    which = _filter(state, topic, reason, since, until)
    found = run(_with_container(lambda c: parked_ops.listing(c, which, limit, after)))
    if as_json:
        emit_json([parked_ops.as_json(parked) for parked in found])
        return
    rows = [
        (
            p.id,
            p.parked_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.record.topic,
            f"{p.record.partition}/{p.record.offset}",
            p.reason,
            _short(p.error),
        )
        for p in found
    ]
    stdout.print(
        table(f"{len(rows)} {state} event(s)", ("id", "parked at", "topic", "part/offset", "reason", "error"), rows)
    )
    if len(rows) == limit:
        stdout.print(f"more may follow: --after {rows[-1][0]}")


@app.command()
def summary(
    state: State = State.parked,
    topic: Topic = None,
    reason: ReasonOption = None,
    since: Since = None,
    until: Until = None,
    as_json: JsonFlag = False,
) -> None:
    """How many events are parked, by topic and reason, with the oldest and newest."""
    from result_aggregator_service.cli import parked_ops

    which = _filter(state, topic, reason, since, until)
    found = run(_with_container(lambda c: parked_ops.counts(c, which)))
    if as_json:
        emit_json([{**vars(row), "oldest": row.oldest.isoformat(), "newest": row.newest.isoformat()} for row in found])
        return
    rows = [
        (r.topic, r.reason, r.count, f"{r.oldest:%Y-%m-%d %H:%M:%S}", f"{r.newest:%Y-%m-%d %H:%M:%S}") for r in found
    ]
    rows.append(("total", "", sum(r.count for r in found), "", ""))
    stdout.print(table(f"{state} events", ("topic", "reason", "count", "oldest", "newest"), rows))


@app.command()
def show(parked_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """One parked event with its raw key, value and headers."""
    from result_aggregator_service.cli import parked_ops

    parked = run(_with_container(lambda c: parked_ops.get(c, parked_id)))
    if parked is None:
        fail(f"parked event {parked_id}: unknown id")
    shown = parked_ops.as_json(parked)
    if as_json:
        emit_json(shown)
        return
    for key, value in shown.items():
        stdout.print(f"[bold]{key}[/bold]: ", end="")
        stdout.print(value, markup=False)


@app.command()
def replay(
    ids: Ids = None,
    select_all: All = False,
    topic: Topic = None,
    reason: ReasonOption = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest parked events again (their claim released first); exit 1 if any still fails."""
    from result_aggregator_service.cli import parked_ops

    _bulk(
        "replay", parked_ops.replay, ids, select_all, _filter(State.parked, topic, reason, since, until), limit, as_json
    )


@app.command()
def discard(
    ids: Ids = None,
    select_all: All = False,
    topic: Topic = None,
    reason: ReasonOption = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark parked events discarded: they are never applied."""
    from result_aggregator_service.cli import parked_ops

    _bulk(
        "discard",
        parked_ops.discard,
        ids,
        select_all,
        _filter(State.parked, topic, reason, since, until),
        limit,
        as_json,
    )


def _bulk(
    verb: str,
    action: Callable[[AsyncContainer, int], Awaitable[Outcome]],
    ids: list[int] | None,
    select_all: bool,
    which: ParkedFilter,
    limit: int | None,
    as_json: bool,
) -> None:
    from result_aggregator_service.cli import parked_ops

    filtered = select_all or any(v is not None for v in (which.topic, which.reason, which.since, which.until))
    if bool(ids) == filtered:
        fail(f"name the ids to {verb}, or select them with --all and/or filters (not both)", 2)

    async def each(container: AsyncContainer) -> list[Outcome]:
        chosen = ids or await parked_ops.matching_ids(container, which, limit)
        outcomes = []
        with Progress(console=stderr, transient=True, disable=as_json) as progress:
            task = progress.add_task(f"{verb}ing", total=len(chosen))
            for parked_id in chosen:
                outcomes.append(await action(container, parked_id))
                progress.advance(task)
        return outcomes

    outcomes = run(_with_container(each))
    tally = Counter(outcome.result for outcome in outcomes)
    if as_json:
        emit_json({"results": [o.as_json() for o in outcomes], "summary": dict(tally)})
    else:
        failures = [(o.id, o.result, o.reason, _short(o.error or "")) for o in outcomes if not o.succeeded]
        if failures:
            stdout.print(table("not done", ("id", "result", "reason", "error"), failures))
        stdout.print(table(f"{verb}: {len(outcomes)} event(s)", ("result", "count"), sorted(tally.items())))
    if any(not outcome.succeeded for outcome in outcomes):
        raise typer.Exit(FAILED)


@asynccontextmanager
async def _container() -> AsyncIterator[AsyncContainer]:
    from result_aggregator_service.config import Settings
    from result_aggregator_service.providers import make_container

    container = make_container(Settings())
    try:
        yield container
    finally:
        await container.close()


async def _with_container(body: Callable[[AsyncContainer], Awaitable[T]]) -> T:
    async with _container() as container:
        return await body(container)


def _filter(
    state: State, topic: str | None, reason: Reason | None, since: str | None, until: str | None
) -> ParkedFilter:
    from result_aggregator_service.adapters.parked_events import ParkedFilter

    return ParkedFilter(
        state.value, topic, reason.value if reason else None, _when(since, "--since"), _when(until, "--until")
    )


_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    if age := _AGE.match(text.strip()):
        return datetime.now(UTC) - timedelta(**{_UNITS[age[2]]: int(age[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option}: not a time or an age: {text!r} ({_WHEN_HELP})", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _short(text: str, width: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
