"""`ras parked list|summary|show|replay|discard`: the operator's view of bad input (brief, rule 7)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from result_aggregator_service.cli.output import FAILED, USAGE, JsonFlag, emit_json, fail, run, stderr, stdout, table
from result_aggregator_service.cli.parked_options import (
    All,
    Ids,
    Limit,
    Reason,
    Since,
    State,
    Topic,
    Until,
    selection,
)

if TYPE_CHECKING:  # parked_ops is imported when a command runs: it pulls in the database stack (~0.5 s)
    from dishka import AsyncContainer

    from result_aggregator_service.adapters.parked_events import ParkedFilter
    from result_aggregator_service.cli.parked_ops import Outcome

app = typer.Typer(help="Parked events: bad input kept with its raw bytes until replayed or discarded.")


@app.command("list")
def list_(
    state: State = State.parked,
    topic: Topic = None,
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    after: Annotated[int, typer.Option(min=0, help="next page: ids greater than this")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Parked events, oldest first."""
    from result_aggregator_service.cli import parked_ops

    which = selection(state, topic, reason, since, until)
    found = run(parked_ops.with_container(lambda c: parked_ops.listing(c, which, limit, after)))
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
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    as_json: JsonFlag = False,
) -> None:
    """How many events are parked, by topic and reason, with the oldest and newest."""
    from result_aggregator_service.cli import parked_ops

    which = selection(state, topic, reason, since, until)
    found = run(parked_ops.with_container(lambda c: parked_ops.counts(c, which)))
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

    parked = run(parked_ops.with_container(lambda c: parked_ops.get(c, parked_id)))
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
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest parked events again (their claim released first); exit 1 if any still fails."""
    _bulk("replay", ids, select_all, selection(State.parked, topic, reason, since, until), limit, as_json)


@app.command()
def discard(
    ids: Ids = None,
    select_all: All = False,
    topic: Topic = None,
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark parked events discarded: they are never applied."""
    _bulk("discard", ids, select_all, selection(State.parked, topic, reason, since, until), limit, as_json)


def _bulk(
    verb: str,
    ids: list[int] | None,
    select_all: bool,
    which: ParkedFilter,
    limit: int | None,
    as_json: bool,
) -> None:
    from result_aggregator_service.cli import parked_ops

    action = {"replay": parked_ops.replay, "discard": parked_ops.discard}[verb]
    filtered = select_all or any(v is not None for v in (which.topic, which.reason, which.since, which.until))
    if bool(ids) == filtered:
        fail(f"name the ids to {verb}, or select them with --all and/or filters (not both)", USAGE)

    async def each(container: AsyncContainer) -> list[Outcome]:
        chosen = ids or await parked_ops.matching_ids(container, which, limit)
        outcomes = []
        with Progress(console=stderr, transient=True, disable=as_json) as progress:
            task = progress.add_task(f"{verb}ing", total=len(chosen))
            for parked_id in chosen:
                outcomes.append(await action(container, parked_id))
                progress.advance(task)
        return outcomes

    outcomes = run(parked_ops.with_container(each))
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


def _short(text: str, width: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
