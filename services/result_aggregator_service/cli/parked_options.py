"""The options `ras parked` commands share: which events (state, topic, reason, a time window)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from result_aggregator_service.cli.output import USAGE, fail
from result_aggregator_service.service_layer.ports import ParkReason

if TYPE_CHECKING:
    from result_aggregator_service.adapters.parked_events import ParkedFilter


class State(StrEnum):
    parked = "parked"
    replayed = "replayed"
    discarded = "discarded"


WHEN_HELP = "ISO-8601 time (UTC unless it says) or an age such as 30m, 2h, 7d"
Topic = Annotated[str | None, typer.Option(help="only this topic")]
Reason = Annotated[ParkReason | None, typer.Option(help="only this reason")]
Since = Annotated[str | None, typer.Option(help=f"parked at or after: {WHEN_HELP}")]
Until = Annotated[str | None, typer.Option(help=f"parked before: {WHEN_HELP}")]
Ids = Annotated[list[int] | None, typer.Argument(help="parked event ids", show_default=False)]
All = Annotated[bool, typer.Option("--all", help="every parked event matching the filters (none: all of them)")]
Limit = Annotated[int | None, typer.Option(min=1, help="at most this many")]

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def selection(
    state: State, topic: str | None, reason: ParkReason | None, since: str | None, until: str | None
) -> ParkedFilter:
    from result_aggregator_service.adapters.parked_events import ParkedFilter

    return ParkedFilter(
        state.value, topic, reason.value if reason else None, _when(since, "--since"), _when(until, "--until")
    )


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    if age := _AGE.match(text.strip()):
        return datetime.now(UTC) - timedelta(**{_UNITS[age[2]]: int(age[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option}: not a time or an age: {text!r} ({WHEN_HELP})", USAGE)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
