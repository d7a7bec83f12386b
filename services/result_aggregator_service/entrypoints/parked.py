"""Operator tool for parked events (brief, rule 7): list, show, replay or discard them.

Run: `python -m result_aggregator_service.entrypoints.parked list [--state S] [--limit N] [--after ID]`,
`... show ID`, `... replay ID` or `... discard ID`. Results are JSON on stdout; logs and errors go to stderr.
Exit codes: 0 done; 1 unknown id, not in state `parked`, or a replay that still fails; 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import structlog
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncSession

from huleedu_service_libs.logging import configure_logging
from result_aggregator_service.adapters.parked_events import ParkedEvent, SqlAlchemyParkedEventStore
from result_aggregator_service.config import Settings
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, SeenEventHints, UnitOfWork

OK, FAILED = 0, 1
_log = structlog.get_logger(__name__)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="parked", description="List, show, replay or discard parked events.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="parked events as JSON lines, oldest first")
    listing.add_argument("--state", choices=("parked", "replayed", "discarded"), default="parked")
    listing.add_argument("--limit", type=_positive, default=100, metavar="N")
    listing.add_argument("--after", type=int, default=0, metavar="ID", help="next page: ids greater than this")
    for name, text in (
        ("show", "one parked event with its raw value"),
        ("replay", "release its claim and ingest it again; marked replayed once it applies"),
        ("discard", "mark it discarded: it is never applied"),
    ):
        commands.add_parser(name, help=text).add_argument("id", type=int)
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


async def run(argv: Sequence[str], container: AsyncContainer, out: TextIO | None = None) -> int:
    """The tool in-process: results go to `out` (stdout by default); returns the exit code."""
    args, out = parse_args(argv), out or sys.stdout
    if args.command == "list":
        async with container() as request:
            for parked in await (await _store(request)).list(args.state, args.limit, args.after):
                _emit(out, _as_json(parked))
        return OK
    command = {"show": show, "replay": replay, "discard": discard}[args.command]
    return await command(container, args.id, out)


async def show(container: AsyncContainer, parked_id: int, out: TextIO) -> int:
    async with container() as request:
        parked = await (await _store(request)).get(parked_id)
    if parked is None:
        return _refuse(parked_id, None)
    _emit(out, _as_json(parked), indent=2)
    return OK


async def replay(container: AsyncContainer, parked_id: int, out: TextIO) -> int:
    """Release the event's claim and ingest the stored record again, in one transaction (process_batch
    commits it), so a replay that fails again leaves the claim as it was. The row is marked `replayed` just
    after; if the process dies in between, replaying it again re-applies an event the rules fold idempotently."""
    async with container() as request:
        store = await _store(request)
        parked = await store.get(parked_id)
        if parked is None or parked.state != "parked":
            return _refuse(parked_id, parked)
        if parked.event_id is not None:
            await store.release_claim(parked.event_id)
        uow, hints, sink = (
            await request.get(UnitOfWork),
            await request.get(SeenEventHints),
            await request.get(ChangeSink),
        )
        try:
            report = await process_batch([parked.record], uow, hints, sink)
            failure = (report.parked[0].reason.value, report.parked[0].error) if report.parked else None
        except Exception as error:  # shown to the operator; the rollback kept the claim
            _log.exception("replay_failed", parked_id=parked_id)
            failure = ("internal", repr(error))
        if failure:
            _emit(out, {"id": parked_id, "result": "still_failing", "reason": failure[0], "error": failure[1]})
            return FAILED
        applied = report.outcomes[parked.record.topic, "success"] > 0
        if not await store.resolve(parked_id, "replayed"):
            return _refuse(parked_id, await store.get(parked_id))
        await (await request.get(AsyncSession)).commit()
    _emit(out, {"id": parked_id, "result": "replayed" if applied else "already_applied"})
    return OK


async def discard(container: AsyncContainer, parked_id: int, out: TextIO) -> int:
    async with container() as request:
        store = await _store(request)
        if not await store.resolve(parked_id, "discarded"):
            return _refuse(parked_id, await store.get(parked_id))
        await (await request.get(AsyncSession)).commit()
    _emit(out, {"id": parked_id, "result": "discarded"})
    return OK


async def _store(request: AsyncContainer) -> SqlAlchemyParkedEventStore:
    # the request's one session: the same transaction as the request's UnitOfWork
    return SqlAlchemyParkedEventStore(await request.get(AsyncSession))


def _as_json(parked: ParkedEvent) -> dict[str, Any]:
    record = parked.record
    return {
        "id": parked.id,
        "state": parked.state,
        "reason": parked.reason,
        "error": parked.error,
        "event_id": str(parked.event_id) if parked.event_id else None,
        "parked_at": parked.parked_at.isoformat(),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        **_bytes_field("key", record.key),
        **_bytes_field("value", record.value),
        "headers": [{"key": key, **_bytes_field("value", value)} for key, value in record.headers],
    }


def _bytes_field(name: str, raw: bytes | None) -> dict[str, str | None]:
    """The bytes as text when they are UTF-8, else base64, with the encoding named."""
    if raw is None:
        return {name: None}
    try:
        return {name: raw.decode("utf-8"), f"{name}_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {name: base64.b64encode(raw).decode("ascii"), f"{name}_encoding": "base64"}


def _refuse(parked_id: int, parked: ParkedEvent | None) -> int:
    problem = "unknown id" if parked is None else f"not parked: its state is {parked.state}"
    print(json.dumps({"id": parked_id, "error": problem}), file=sys.stderr)
    return FAILED


def _emit(out: TextIO, payload: dict[str, Any], indent: int | None = None) -> None:
    print(json.dumps(payload, indent=indent, ensure_ascii=False), file=out)


async def _main(argv: Sequence[str], settings: Settings) -> int:
    container = make_container(settings)
    try:
        return await run(argv, container)
    finally:
        await container.close()


def main() -> None:
    argv = sys.argv[1:]
    parse_args(argv)  # a usage error exits 2 before any connection is made
    settings = Settings()
    configure_logging("result_aggregator_parked", settings.log_level, settings.log_format)
    for handler in logging.getLogger().handlers:  # stdout carries the results
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    sys.exit(asyncio.run(_main(argv, settings)))


if __name__ == "__main__":
    main()
