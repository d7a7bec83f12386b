"""A rebuild's database side: the shadow read model in a schema of its own, the one transaction that
swaps it in, and dropping what a rebuild leaves behind.

- The shadow is shaped by the migrations themselves (Alembic upgrades an empty schema to head), so it
  is the live shape; its `batches.version` starts at the new epoch's base, so no version repeats.
- Shadow workers reach only their schema (search_path), so their parked records and outbox rows land in
  the shadow's own copies of those tables and go with it. One exception, in the swap: the announcements
  the shadow made due for a batch whose rebuilt state differs from the live one (a batch the live model
  lacked, got wrong, or had not caught up with: after the swap the live workers skip those events as
  duplicates) join the live outbox, unless already there (stable event ids). A batch whose state is the
  same keeps only what the live model announced, so a rebuild never re-announces history.
- The swap, one transaction: the two models are compared while live writes go on; then live writes
  wait (EXCLUSIVE locks, in the order the worker takes them: no deadlock), `shadow_caught_up` confirms
  the shadow applied everything the live workers could have (and stops its workers), a shadow commit
  still under way is waited for, the batches whose versions moved since the comparison are compared
  again, then the live tables move to a retired schema and the shadow's take their place (reads wait
  only for these moves). Workers and API processes follow without a restart: they name the tables
  unqualified, and PostgreSQL resolves a statement that waited on a moved table (or a cached plan) again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.adapters.tables import EPOCH_VERSION_BASE, OUTBOX_CHANNEL
from result_aggregator_service.service_layer.ports import NOTHING_SETTLED, BatchChange, SettledEvents

SHADOW_PREFIX = "rm_shadow_"
RETIRED_PREFIX = "rm_retired_"
# The swap's lock order is the worker's: claims first, then batches, then essays.
_SWAPPED = ("processed_events", "batches", "essays")
_SHADOW_WRITES = (*_SWAPPED, "outbox")  # what a shadow worker's micro-batch writes, in its order
_LOCK_NOT_AVAILABLE = "55P03"
_REBUILD_LOCK = 0x7261735F72  # pg advisory lock key: one rebuild at a time per database ("ras_r")


class RebuildRefused(RuntimeError):
    """Another rebuild holds the database, or switched the epoch under this one."""


class SwapLockTimeout(RuntimeError):
    """A lock the swap needs was not had within its timeout (a long transaction holds it): rolled back."""


@dataclass(frozen=True)
class SwapTimings:
    writes_paused_seconds: float  # live writes waited this long (the lock to the commit)
    reads_paused_seconds: float  # API reads of the read model waited at most this long (the moves)


class SilentChanges:
    """A shadow's `ChangeSink`: no one reads the shadow, so there is no cached response to drop and no
    change to announce (the swap flushes the response cache once)."""

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        return None

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        return None


class NoSeenEventHints:
    """A shadow's `SeenEventHints`: every event is new to it; the live workers' hints would only cost a
    confirming query per event."""

    async def seen(self, event_ids: Collection[UUID]) -> set[UUID]:
        return set()

    async def remember(self, event_ids: Collection[UUID]) -> None:
        return None


async def hold_rebuild_lock(connection: AsyncConnection) -> None:
    """A session lock for the rebuild's whole run; it goes with the connection (a killed rebuild too).
    Autocommit: the connection must not sit idle in a transaction for the whole rebuild."""
    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
    if not (await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _REBUILD_LOCK})).scalar_one():
        raise RebuildRefused("another rebuild is running on this database")


async def live_epoch(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT epoch FROM read_model"))).scalar_one())


async def drop_leftovers(engine: AsyncEngine) -> list[str]:
    """Drop what earlier rebuilds left: a shadow (killed, failed, or the empty rest after a swap) and a
    retired read model (its grace period is over once a new rebuild starts)."""
    async with engine.begin() as connection:
        found = await connection.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :shadow OR nspname LIKE :retired ORDER BY 1"),
            {"shadow": f"{SHADOW_PREFIX}%", "retired": f"{RETIRED_PREFIX}%"},
        )
        names = list(found.scalars())
        for name in names:
            await connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        await connection.execute(text("UPDATE read_model SET retired_schema = NULL, drop_retired_after = NULL"))
    return names


async def drop_schema(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


async def drop_retired(engine: AsyncEngine, retired: str) -> None:
    """The grace period is over: the swapped-out read model goes."""
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE'))
        await connection.execute(
            text("UPDATE read_model SET retired_schema = NULL, drop_retired_after = NULL WHERE retired_schema = :r"),
            {"r": retired},
        )


async def create_shadow(engine: AsyncEngine, database_url: str, epoch: int) -> str:
    """A new schema migrated to head; its versions start at `epoch`'s base."""
    name = f"{SHADOW_PREFIX}{epoch}_{uuid.uuid4().hex[:6]}"
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{name}"'))
    await asyncio.to_thread(upgrade_to_head, database_url, name)
    async with engine.begin() as connection:
        base = epoch * EPOCH_VERSION_BASE
        await connection.execute(text(f'ALTER TABLE "{name}".batches ALTER COLUMN version SET DEFAULT {base}'))
    return name


async def swap_in(
    engine: AsyncEngine,
    shadow: str,
    epoch: int,
    grace_seconds: float,
    shadow_caught_up: Callable[[], Awaitable[None]],
    lock_timeout_seconds: float = 10.0,
) -> tuple[str, SwapTimings]:
    """Make `shadow` the live read model at `epoch`, in one transaction; returns the retired schema.
    Anything that raises (a lock not had in time, `shadow_caught_up` giving up) rolls it all back."""
    retired = f"{RETIRED_PREFIX}{epoch - 1}_{shadow.rsplit('_', 1)[1]}"
    try:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_seconds * 1000)}ms'"))
            live = (await connection.execute(text("SELECT current_schema()"))).scalar_one()
            for statement in _compare_ahead(live, shadow):  # the long part, while live writes go on
                await connection.execute(statement)
            current = (await connection.execute(text("SELECT epoch FROM read_model FOR UPDATE"))).scalar_one()
            if current != epoch - 1:
                raise RebuildRefused(f"the live epoch moved to {current} during this rebuild (to {epoch})")
            writes_paused = time.monotonic()
            await connection.execute(text(f"LOCK TABLE {', '.join(_SWAPPED)} IN EXCLUSIVE MODE"))  # writes wait
            await shadow_caught_up()
            # a shadow transaction still committing (its worker was just stopped) lands before the carry-over
            # reads the shadow, and none starts after it
            shadow_tables = ", ".join(f'"{shadow}".{table}' for table in _SHADOW_WRITES)
            await connection.execute(text(f"LOCK TABLE {shadow_tables} IN EXCLUSIVE MODE"))
            for statement in _carry_over_announcements(live, shadow):
                await connection.execute(statement)
            await connection.execute(text(f'CREATE SCHEMA "{retired}"'))
            reads_paused = time.monotonic()  # each move takes its table's ACCESS EXCLUSIVE lock: reads wait
            for table in _SWAPPED:
                await connection.execute(text(f'ALTER TABLE "{live}".{table} SET SCHEMA "{retired}"'))
            for table in _SWAPPED:
                await connection.execute(text(f'ALTER TABLE "{shadow}".{table} SET SCHEMA "{live}"'))
            await connection.execute(
                text(
                    "UPDATE read_model SET epoch = :epoch, switched_at = now(), retired_schema = :retired,"
                    " drop_retired_after = now() + make_interval(secs => :grace)"
                ),
                {"epoch": epoch, "retired": retired, "grace": grace_seconds},
            )
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise SwapLockTimeout(str(error.orig)) from error
        raise
    done = time.monotonic()
    return retired, SwapTimings(done - writes_paused, done - reads_paused)


def _compare_ahead(live: str, shadow: str) -> list[TextClause]:
    """Before the write lock: which batches differ between the two models (the batch's facts or any of its
    essays'), at which versions, and the batch of every shadow outbox row so far. Every change to a batch
    or its essays bumps the batch's version, so under the lock only the batches whose version moved on
    either side (or that are new to one) need comparing again. Temporary tables, gone with the swap."""
    return [
        text(
            f"""
CREATE TEMPORARY TABLE swap_compared ON COMMIT DROP AS
WITH essays_differ AS (
  SELECT DISTINCT batch_id FROM "{shadow}".essays s FULL JOIN "{live}".essays l USING (batch_id, essay_id)
  WHERE s.facts IS DISTINCT FROM l.facts
)
SELECT batch_id, l.version AS live_version, s.version AS shadow_version,
       s.facts IS DISTINCT FROM l.facts OR batch_id IN (SELECT batch_id FROM essays_differ) AS differs
FROM "{shadow}".batches s FULL JOIN "{live}".batches l USING (batch_id)
"""
        ),
        text("ALTER TABLE swap_compared ADD PRIMARY KEY (batch_id)"),
        text(
            f"""
CREATE TEMPORARY TABLE swap_shadow_outbox ON COMMIT DROP AS
SELECT id, {_outbox_batch_id("value")} AS batch_id FROM "{shadow}".outbox
"""
        ),
        text("ALTER TABLE swap_shadow_outbox ADD PRIMARY KEY (id)"),
        text("ANALYZE swap_compared, swap_shadow_outbox"),
    ]


def _outbox_batch_id(value: str) -> str:
    """The batch an outbox row announces, from its `value` column (the event's JSON bytes)."""
    return f"convert_from({value}, 'UTF8')::jsonb -> 'data' ->> 'batch_id'"


def _carry_over_announcements(live: str, shadow: str) -> list[TextClause]:
    """What the swap moves from the shadow's outbox into the live one (while live writes wait): the rows
    of each batch whose facts, or any of its essays' facts, differ between the two models. What
    `_compare_ahead` found stands for the batches whose versions did not move since; the others
    (`swap_moved`, a table with statistics, so that the planner knows how many) are compared now, and
    only the outbox rows added since are parsed now."""
    moved = text(
        f"""
CREATE TEMPORARY TABLE swap_moved ON COMMIT DROP AS
SELECT batch_id FROM "{shadow}".batches s FULL JOIN "{live}".batches l USING (batch_id)
LEFT JOIN swap_compared c USING (batch_id)
-- a batch new to a side: a version against none
WHERE s.version IS DISTINCT FROM c.shadow_version OR l.version IS DISTINCT FROM c.live_version
"""
    )
    carry = text(
        f"""
WITH changed AS (
  SELECT batch_id FROM swap_compared c
  WHERE differs AND NOT EXISTS (SELECT FROM swap_moved m WHERE m.batch_id = c.batch_id)
  UNION
  SELECT batch_id
  FROM (SELECT batch_id, facts FROM "{shadow}".batches JOIN swap_moved USING (batch_id)) s
  FULL JOIN (SELECT batch_id, facts FROM "{live}".batches JOIN swap_moved USING (batch_id)) l USING (batch_id)
  WHERE s.facts IS DISTINCT FROM l.facts
  UNION
  SELECT batch_id
  FROM (SELECT batch_id, essay_id, facts FROM "{shadow}".essays JOIN swap_moved USING (batch_id)) s
  FULL JOIN (SELECT batch_id, essay_id, facts FROM "{live}".essays JOIN swap_moved USING (batch_id)) l
  USING (batch_id, essay_id)
  WHERE s.facts IS DISTINCT FROM l.facts
), carried AS (
  INSERT INTO "{live}".outbox (event_id, topic, key, value, headers, created_at)
  SELECT o.event_id, o.topic, o.key, o.value, o.headers, o.created_at
  FROM "{shadow}".outbox o LEFT JOIN swap_shadow_outbox p USING (id)
  WHERE CASE WHEN p.id IS NULL THEN {_outbox_batch_id("o.value")} ELSE p.batch_id END
        IN (SELECT batch_id FROM changed)
  ORDER BY o.id
  ON CONFLICT (event_id) DO NOTHING
  RETURNING 1
)
SELECT CASE WHEN count(*) > 0 THEN pg_notify('{OUTBOX_CHANNEL}', '') END FROM carried
"""
    )
    return [moved, text("ANALYZE swap_moved"), carry]
