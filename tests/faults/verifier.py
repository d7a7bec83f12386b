"""The verifier: after a fault scenario, the faulted read model against an undisturbed reference (a
second worker, in a fresh database, with its own consumer group, started after the faults), and the
figures of the run: events, kills and restarts, lost, double-applied, wrongly parked, stale reads, and the
time to recover after each fault."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHUNK = 5_000
_DOUBLED = text(
    "SELECT event_id::text FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
    " GROUP BY event_id HAVING count(*) > 1"
)
_PARKED = text(
    "SELECT coalesce(event_id::text, encode(key, 'escape')), reason FROM parked_events"
    " WHERE event_id = ANY(CAST(:ids AS uuid[])) OR key = ANY(CAST(:keys AS bytea[]))"
)


@dataclass
class FaultTiming:
    fault: str
    first_commit_seconds: float | None  # the fault cleared → the first event applied after it
    caught_up_seconds: float | None  # the fault cleared → every event published before then applied


@dataclass
class Figures:
    scenario: str
    profile: str
    events: int = 0
    batches: int = 0
    kills: int = 0
    restarts: int = 0
    faults: list[FaultTiming] = field(default_factory=list)
    lost: int = 0
    double_applied: int = 0
    wrongly_parked: int = 0
    mismatched_batches: int = 0
    stale_reads: int = 0
    reads: int = 0
    read_errors: int = 0
    catch_up_seconds: float | None = None  # the load's end → everything applied
    examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = (
            f"{self.scenario} [{self.profile}]: {self.events} events in {self.batches} batches, "
            f"{self.kills} kills, {self.restarts} restarts; lost {self.lost}, double-applied "
            f"{self.double_applied}, wrongly parked {self.wrongly_parked}, batches differing from the reference "
            f"{self.mismatched_batches}, stale reads {self.stale_reads} of {self.reads} ({self.read_errors} "
            f"errors); caught up {_seconds(self.catch_up_seconds)} after the load"
        )
        timings = [
            f"  {t.fault}: first commit after {_seconds(t.first_commit_seconds)}, "
            f"caught up after {_seconds(t.caught_up_seconds)}"
            for t in self.faults
        ]
        return "\n".join([head, *timings, *(f"  ! {example}" for example in self.examples[:10])])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def assert_clean(self) -> None:
        problems = {
            "lost": self.lost,
            "double_applied": self.double_applied,
            "wrongly_parked": self.wrongly_parked,
            "mismatched_batches": self.mismatched_batches,
            "stale_reads": self.stale_reads,
        }
        assert not any(problems.values()), f"{problems}\n{self.summary()}"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


async def double_applied(engine: AsyncEngine, event_ids: list[str]) -> list[str]:
    found: list[str] = []
    async with engine.connect() as connection:
        for start in range(0, len(event_ids), CHUNK):
            rows = await connection.execute(_DOUBLED, {"ids": event_ids[start : start + CHUNK]})
            found += [row[0] for row in rows]
    return found


async def parked(engine: AsyncEngine, event_ids: list[str], keys: list[str]) -> list[str]:
    """Parked rows of these events (by event id, or by the batch id as the record's key)."""
    found: list[str] = []
    async with engine.connect() as connection:
        for start in range(0, max(len(event_ids), len(keys)), CHUNK):
            ids, key_bytes = event_ids[start : start + CHUNK], [k.encode() for k in keys[start : start + CHUNK]]
            rows = await connection.execute(_PARKED, {"ids": ids, "keys": key_bytes})
            found += [f"{row[0]} parked as {row[1]}" for row in rows]
    return found


async def differing_batches(
    faulted: httpx.AsyncClient, reference: httpx.AsyncClient, batch_ids: list[str]
) -> list[str]:
    """Batches whose status answer (code and body) differs between the two APIs."""
    limit = asyncio.Semaphore(8)

    async def differs(batch_id: str) -> str | None:
        async with limit:
            url = f"/internal/v1/batches/{batch_id}/status"
            mine, theirs = await faulted.get(url), await reference.get(url)
        if mine.status_code != theirs.status_code:
            return f"{batch_id}: answered {mine.status_code}, the reference {theirs.status_code}"
        differences = _differences(mine.json(), theirs.json()) if mine.status_code == 200 else []
        return f"{batch_id}: {'; '.join(differences[:3])}" if differences else None

    return [d for d in await asyncio.gather(*(differs(b) for b in batch_ids)) if d is not None]


def _differences(mine: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as `path: mine != reference`."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [
            d
            for key in sorted(mine.keys() | theirs.keys())
            for d in _differences(mine.get(key), theirs.get(key), f"{path}.{key}")
        ]
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [
            d for n, (a, b) in enumerate(zip(mine, theirs, strict=True)) for d in _differences(a, b, f"{path}[{n}]")
        ]
    return [] if mine == theirs else [f"{path or '.'}: {mine!r} != reference {theirs!r}"]
