"""PostgreSQL batch repository: SQL mechanics only, a fixed number of set-based statements per micro-batch.

`load` locks and reads every batch of the micro-batch and their essays (three statements whatever
their number); `flush` writes each changed batch and essay, with its view, in one `unnest` upsert per
table. What the views hold is the projection's business (domain/projection.py).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import orjson
from orjson import Fragment
from sqlalchemy import Table, TextClause, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.facts_cache import FactsCache
from result_aggregator_service.adapters.facts_codec import decode_batch, decode_essay, encode_batch, encode_essay
from result_aggregator_service.adapters.tables import batches, essays
from result_aggregator_service.domain.model import BatchResult, EssayResult
from result_aggregator_service.domain.projection import BatchView, EssayView, project_batch, project_essay
from result_aggregator_service.service_layer.ports import BatchChange


def _upsert(table: Table, columns: Sequence[str], keys: Sequence[str], *extra: str, returning: str = "") -> TextClause:
    """INSERT ... SELECT FROM jsonb_populate_recordset(the rows as one JSON array) ON CONFLICT (keys) DO UPDATE.

    One parameter for the whole micro-batch: PostgreSQL parses the rows, the driver encodes one string
    (per-element array encoding in asyncpg cost more than the rest of the statement)."""
    updates = ", ".join([*(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys), *extra])
    names = ", ".join(columns)
    return text(
        f"INSERT INTO {table.name} ({names}) SELECT {names}"
        f" FROM jsonb_populate_recordset(NULL::{table.name}, CAST(:rows AS jsonb))"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}" + (f" RETURNING {returning}" if returning else "")
    )


ViewT = TypeVar("ViewT", BatchView, EssayView)
_JSON_COLUMNS = frozenset(c.name for table in (batches, essays) for c in table.c if isinstance(c.type, JSONB))
_BATCH_COLUMNS = [f.name for f in dataclasses.fields(BatchView)] + ["facts"]
_ESSAY_COLUMNS = ["batch_id", *(f.name for f in dataclasses.fields(EssayView)), "facts"]
_UPSERT_BATCHES = _upsert(
    batches, _BATCH_COLUMNS, ["batch_id"], "version = batches.version + 1", returning="batch_id, version"
)
_UPSERT_ESSAYS = _upsert(essays, _ESSAY_COLUMNS, ["batch_id", "essay_id"])
_PLACEHOLDERS = text(
    "INSERT INTO batches (batch_id) SELECT unnest(CAST(:ids AS text[])) ORDER BY 1 ON CONFLICT DO NOTHING"
)
# Lock every batch; its facts only where the caller's cached version is not the row's (NULL: a hit).
_LOCK_BATCHES = text(
    "SELECT b.batch_id, b.version, CASE WHEN b.version IS NOT DISTINCT FROM c.version THEN NULL ELSE b.facts::text END"
    " FROM batches b LEFT JOIN unnest(CAST(:ids AS text[]), CAST(:cached AS int8[])) AS c(batch_id, version)"
    " ON c.batch_id = b.batch_id WHERE b.batch_id = ANY(CAST(:ids AS text[])) ORDER BY b.batch_id FOR UPDATE OF b"
)
_FACTS_OF = text("SELECT batch_id, facts::text FROM batches WHERE batch_id = ANY(CAST(:ids AS text[]))")
_ESSAYS_OF = text("SELECT batch_id, facts::text FROM essays WHERE batch_id = ANY(CAST(:ids AS text[]))")
_BATCH_VIEW = text(f"SELECT {', '.join(_BATCH_COLUMNS[:-1])} FROM batches WHERE batch_id = :id")
_ESSAY_VIEWS = text(f"SELECT {', '.join(_ESSAY_COLUMNS[1:-1])} FROM essays WHERE batch_id = :id ORDER BY essay_id")
_VERSIONS = text("SELECT batch_id, version, user_id FROM batches WHERE batch_id = ANY(CAST(:ids AS text[]))")


class SqlAlchemyBatchRepository:
    def __init__(self, session: AsyncSession, cache: FactsCache | None = None) -> None:
        self._session = session
        self._cache = cache  # the worker's; readers without one read every row
        self._loaded: dict[str, BatchResult] = {}
        self._saved: dict[str, BatchResult] = {}
        self._written: dict[str, tuple[int, BatchResult]] = {}
        # (committed state or None, new state) of every batch the last flush wrote
        self.flushed: list[tuple[BatchResult | None, BatchResult]] = []

    async def load(self, batch_ids: Collection[str]) -> None:
        missing = sorted(set(batch_ids) - self._loaded.keys())
        if not missing:
            return
        # A placeholder row for every batch first, so that two workers touching a batch new to both
        # serialise on its row lock instead of overwriting each other's facts. Sorted: no deadlocks.
        await self._session.execute(_PLACEHOLDERS, {"ids": missing})
        cached = [self._cache.version_of(batch_id) if self._cache else None for batch_id in missing]
        rows = (await self._session.execute(_LOCK_BATCHES, {"ids": missing, "cached": cached})).all()
        # Every hit is taken before anything new is cached: a put may evict an entry this very load counts on.
        cache = self._cache
        hits = {b: cache.get(b, version) for b, version, facts in rows if facts is None} if cache else {}
        facts_of: dict[str, str] = {batch_id: facts for batch_id, _, facts in rows if facts is not None}
        lost = [batch_id for batch_id, hit in hits.items() if hit is None]
        if lost:  # not expected; read them like any other miss rather than start them empty
            facts_of.update((await self._session.execute(_FACTS_OF, {"ids": lost})).tuples().all())
        essays_of: dict[str, dict[str, EssayResult]] = defaultdict(dict)
        # A placeholder ('{}') was never written by a flush, so no essay of it was either. No lock needed on
        # essays: every writer of an essay holds its batch's row lock.
        if known := [batch_id for batch_id, facts in facts_of.items() if facts != "{}"]:
            for batch_id, facts in await self._session.execute(_ESSAYS_OF, {"ids": known}):
                essay = decode_essay(facts)
                essays_of[batch_id][essay.essay_id] = essay
        for batch_id, version, _ in rows:
            if (hit := hits.get(batch_id)) is not None:
                self._loaded[batch_id] = hit
            elif facts_of[batch_id] == "{}":  # a placeholder: nothing known about the batch yet
                self._loaded[batch_id] = BatchResult(batch_id)
            else:
                self._loaded[batch_id] = decode_batch(facts_of[batch_id], essays_of[batch_id])
                if self._cache:  # read under the lock: what this version stands for, whatever happens next
                    self._cache.put(batch_id, version, self._loaded[batch_id])
        if cache:
            new = sum(1 for facts in facts_of.values() if facts == "{}")
            cache.count(hits=len(hits) - len(lost), misses=len(facts_of) - new, new=new)

    def committed(self) -> None:
        """The transaction committed: the cache may now remember what it wrote."""
        if self._cache:
            for batch_id, (version, batch) in self._written.items():
                self._cache.put(batch_id, version, batch)
        self._written.clear()

    async def get(self, batch_id: str) -> BatchResult:
        if batch_id not in self._loaded:
            await self.load([batch_id])
        return self._saved.get(batch_id) or self._loaded[batch_id]

    def save(self, batch: BatchResult) -> None:
        self._saved[batch.batch_id] = batch

    async def current(self, batch_ids: Collection[str]) -> list[BatchChange]:
        if not batch_ids:
            return []
        rows = await self._session.execute(_VERSIONS, {"ids": list(batch_ids)})
        return [BatchChange(batch_id, version, frozenset({user} if user else ())) for batch_id, version, user in rows]

    async def view(self, batch_id: str) -> tuple[BatchView, list[EssayView]] | None:
        row = (await self._session.execute(_BATCH_VIEW, {"id": batch_id})).first()
        if row is None:
            return None
        essay_rows = await self._session.execute(_ESSAY_VIEWS, {"id": batch_id})
        return _view(BatchView, row), [_view(EssayView, essay) for essay in essay_rows]

    async def flush(self) -> list[BatchChange]:
        """Write every saved batch whose state changed, and its changed essays; return the new versions."""
        changed = [batch for batch_id, batch in self._saved.items() if batch != self._loaded.get(batch_id)]
        self.flushed = [(self._loaded.get(batch.batch_id), batch) for batch in changed]
        if not changed:
            return []
        batch_rows = [{**project_batch(b).__dict__, "facts": Fragment(encode_batch(b))} for b in changed]
        result = await self._session.execute(_UPSERT_BATCHES, {"rows": orjson.dumps(batch_rows).decode()})
        versions: dict[str, int] = dict(result.all())
        essay_rows = [
            {"batch_id": batch.batch_id, **project_essay(essay).__dict__, "facts": Fragment(encode_essay(essay))}
            for batch in changed
            for essay in self._changed_essays(batch)
        ]
        if essay_rows:
            await self._session.execute(_UPSERT_ESSAYS, {"rows": orjson.dumps(essay_rows).decode()})
        self._written = {batch.batch_id: (versions[batch.batch_id], batch) for batch in changed}
        return [BatchChange.of(batch, versions[batch.batch_id], self._loaded.get(batch.batch_id)) for batch in changed]

    def _changed_essays(self, batch: BatchResult) -> list[EssayResult]:
        before = self._loaded.get(batch.batch_id)
        known = before.essays if before is not None else {}
        return [essay for essay_id, essay in batch.essays.items() if essay != known.get(essay_id)]


def _view(view: type[ViewT], row: Any) -> ViewT:
    """A stored row as its view; JSON columns come back as text (text() selects skip type processing)."""
    fields = row._mapping
    return view(**{k: orjson.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in fields.items()})
