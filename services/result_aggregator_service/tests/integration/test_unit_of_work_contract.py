"""One contract, two units of work: the in-memory fake cannot drift from the PostgreSQL adapter."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from dishka import AsyncContainer
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, make_url, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common_core import topics
from result_aggregator_service.adapters.facts_cache import FactsCache
from result_aggregator_service.adapters.in_memory import InMemoryStore, InMemoryUnitOfWork
from result_aggregator_service.adapters.tables import OUTBOX_CHANNEL, outbox, processed_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.config import Settings
from result_aggregator_service.domain.emissions import PublishedTopics
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.domain.projection import project_batch, project_essay
from result_aggregator_service.domain.rules import derive_status
from result_aggregator_service.lifecycles import batch_lifecycle, delivered
from result_aggregator_service.service_layer.handlers import HANDLERS_BY_TOPIC
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import UnitOfWork
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import RecordingChangeSink, SetSeenEventHints, record_of
from result_aggregator_service.tests.published_events import assert_matches, expected_events
from result_aggregator_service.tests.scenarios import lifecycle
from result_aggregator_service.tests.unit.folding import decoded, fold

UowFactory = Callable[..., UnitOfWork]  # published=TOPICS (the default) or None: publishing off
TOPICS = PublishedTopics(
    topics.BATCH_RESULTS_READY_TOPIC,
    topics.BATCH_ASSESSMENT_COMPLETED_TOPIC,
    topics.TEACHER_NOTIFICATION_REQUESTED_TOPIC,
)
OutboxRow = tuple[str, str, bytes, bytes, list[list[str]]]  # event_id, topic, key, value, headers


class UnitOfWorkContract:
    @pytest.fixture
    def make_uow(self) -> UowFactory:
        raise NotImplementedError

    async def claim_count(self, event_id: uuid.UUID) -> int:
        raise NotImplementedError

    async def outbox_rows(self, keys: list[str]) -> list[OutboxRow]:
        """The outbox rows with these keys, in the order written."""
        raise NotImplementedError

    async def ingest(self, make_uow: UowFactory, events: list[dict[str, Any]]) -> RecordingChangeSink:
        sink = RecordingChangeSink()
        await process_batch([record_of(e) for e in events], make_uow(), SetSeenEventHints(), sink)
        return sink

    async def read(self, make_uow: UowFactory, batch_id: str) -> BatchResult:
        async with make_uow() as uow:
            return await uow.batches.get(batch_id)

    async def test_a_committed_lifecycle_reads_back_as_folded(self, make_uow: UowFactory) -> None:
        batch_id, essays = samples.new_id("batch-"), [samples.new_id("essay-") for _ in range(3)]
        await self.ingest(make_uow, lifecycle(batch_id, essays))
        batch = await self.read(make_uow, batch_id)
        assert batch.is_registered
        assert set(batch.essays) == set(essays)
        assert derive_status(batch).value == "completed_with_failures"

    async def test_shuffled_micro_batches_with_duplicates_give_the_in_order_fold(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        events = lifecycle(batch_id, [samples.new_id("essay-") for _ in range(3)])
        delivered = random.sample(events + events[:4], k=len(events) + 4)
        for start in range(0, len(delivered), 3):
            await self.ingest(make_uow, delivered[start : start + 3])
        assert await self.read(make_uow, batch_id) == fold([decoded(e) for e in events], batch_id)

    async def test_replaying_an_event_changes_nothing_and_claims_it_once(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        registration = samples.batch_registered(batch_id, [samples.new_id("essay-")])
        first = await self.ingest(make_uow, [registration])
        before = await self.read(make_uow, batch_id)
        replay = await self.ingest(make_uow, [registration])
        assert await self.read(make_uow, batch_id) == before
        assert await self.claim_count(uuid.UUID(registration["event_id"])) == 1
        assert [c.version for c in first.changes] == [c.version for c in replay.changes]

    async def test_commit_reports_the_new_version_and_owner(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        sink = await self.ingest(make_uow, [samples.batch_registered(batch_id, ["e1"], user_id="owner-7")])
        later = await self.ingest(make_uow, [samples.slot_assigned(batch_id, "e1")])
        assert [(c.batch_id, c.user_ids) for c in sink.changes] == [(batch_id, frozenset({"owner-7"}))]
        assert later.changes[0].version == sink.changes[0].version + 1

    async def test_nothing_is_written_without_a_commit(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        registration = samples.batch_registered(batch_id, ["e1"])
        async with make_uow() as uow:
            await uow.claim([(uuid.UUID(registration["event_id"]), record_of(registration))])
            uow.batches.save(BatchResult(batch_id, last_updated=None))
        assert await self.claim_count(uuid.UUID(registration["event_id"])) == 0
        assert not (await self.read(make_uow, batch_id)).is_registered

    async def test_a_result_before_its_registration_is_kept(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        await self.ingest(make_uow, [samples.spellcheck_result(batch_id, "early-essay")])
        assert not (await self.read(make_uow, batch_id)).is_registered
        await self.ingest(make_uow, [samples.batch_registered(batch_id, ["early-essay", "other"])])
        batch = await self.read(make_uow, batch_id)
        spellcheck = batch.essays["early-essay"].spellcheck
        assert batch.is_registered and spellcheck is not None and spellcheck.correction_count == 3

    async def stored_views(self, make_uow: UowFactory, batch_id: str) -> Any:
        async with make_uow() as uow:
            return await uow.batches.view(batch_id)

    @pytest.mark.parametrize("registration_last", [False, True], ids=["shuffled", "results-before-registration"])
    async def test_stored_views_are_the_projection_of_the_in_order_fold(
        self, make_uow: UowFactory, registration_last: bool
    ) -> None:
        """Both adapters store exactly what the projection makes of the in-order fold, so they give
        identical views whatever the order, the duplicates and the micro-batch boundaries."""
        rng = random.Random()
        for _ in range(3):
            life = batch_lifecycle(rng, "parity-teacher", essay_count=4)
            sent = delivered(life.events, rng, out_of_order=1.0, duplicated=0.3)
            if registration_last:
                sent = [e for e in sent if e is not life.events[0]] + [life.events[0]]
            size = rng.randint(1, 6)
            for start in range(0, len(sent), size):
                await self.ingest(make_uow, sent[start : start + size])
            folded = fold([decoded(e) for e in life.events], life.batch_id)
            projected = (project_batch(folded), [project_essay(e) for _, e in sorted(folded.essays.items())])
            assert await self.stored_views(make_uow, life.batch_id) == projected

    @pytest.mark.parametrize(
        "delivery", ["in-order", "shuffled-with-duplicates", "results-before-registration", "re-sent"]
    )
    async def test_every_lifecycle_leaves_exactly_the_expected_outbox_rows(
        self, make_uow: UowFactory, delivery: str
    ) -> None:
        """Brief §6: each event once, with the content the brief's tables give, whatever the delivery."""
        rng = random.Random()
        teacher = samples.new_id("teacher-")
        fixed = lifecycle(samples.new_id("batch-"), [samples.new_id("essay-") for _ in range(3)], user_id=teacher)
        lives = [batch_lifecycle(rng, teacher, spellcheck_failure_rate=rate).events for rate in (0.0, 0.3, 0.6)]
        for events in [tuple(fixed), *lives]:
            sent = list(events)
            if delivery == "shuffled-with-duplicates":
                sent = delivered(events, rng, out_of_order=1.0, duplicated=0.3)
            elif delivery == "results-before-registration":
                sent = [*sent[1:], sent[0]]
            elif delivery == "re-sent":
                sent = sent + sent
            size = rng.randint(1, 5)
            for start in range(0, len(sent), size):
                await self.ingest(make_uow, sent[start : start + size])
        expected = {}
        for events in [tuple(fixed), *lives]:
            expected.update(expected_events(events))
        batch_ids = [events[0]["data"]["entity_id"] for events in [fixed, *lives]]
        rows = await self.outbox_rows([teacher, *batch_ids])
        assert sorted(row[0] for row in rows) == sorted(expected)
        for event_id, topic, key, value, headers in rows:
            assert (topic, key.decode()) == (expected[event_id].topic, expected[event_id].key)
            assert_matches(value, expected[event_id])
            assert dict(headers)["event_id"] == event_id

    async def test_with_publishing_off_nothing_is_written_to_the_outbox(self, make_uow: UowFactory) -> None:
        batch_id, teacher = samples.new_id("batch-"), samples.new_id("teacher-")
        sink = RecordingChangeSink()
        records = [record_of(e) for e in lifecycle(batch_id, ["e1", "e2"], user_id=teacher)]
        await process_batch(records, make_uow(published=None), SetSeenEventHints(), sink)
        assert sink.changes and await self.outbox_rows([teacher, batch_id]) == []


class TestInMemoryUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    def make_uow(self) -> UowFactory:
        self.store = InMemoryStore()
        return lambda published=TOPICS: InMemoryUnitOfWork(self.store, published)

    async def claim_count(self, event_id: uuid.UUID) -> int:
        return int(event_id in self.store.claims)

    async def outbox_rows(self, keys: list[str]) -> list[OutboxRow]:
        return [
            (str(m.event_id), m.topic, m.key, m.value, [list(h) for h in m.headers])
            for m in self.store.outbox
            if m.key.decode() in keys
        ]


@pytest.mark.infra
class TestSqlAlchemyUnitOfWork(UnitOfWorkContract):
    @pytest.fixture
    async def make_uow(self, container: AsyncContainer) -> AsyncIterator[UowFactory]:
        self.sessions = await container.get(async_sessionmaker[AsyncSession])
        opened: list[AsyncSession] = []
        self.opened = opened

        cache = FactsCache(capacity=1000)  # as the worker runs: one cache for every unit of work

        def make(published: PublishedTopics | None = TOPICS) -> UnitOfWork:
            opened.append(self.sessions())
            return SqlAlchemyUnitOfWork(opened[-1], cache, published)

        yield make
        for session in opened:
            await session.close()

    async def claim_count(self, event_id: uuid.UUID) -> int:
        async with self.sessions() as session:
            query = select(func.count()).select_from(processed_events).where(processed_events.c.event_id == event_id)
            return int((await session.execute(query)).scalar_one())

    async def outbox_rows(self, keys: list[str]) -> list[OutboxRow]:
        query = (
            select(outbox.c.event_id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
            .where(outbox.c.key.in_([key.encode() for key in keys]))
            .order_by(outbox.c.id)
        )
        async with self.sessions() as session:
            return [(str(i), t, k, v, h) for i, t, k, v, h in (await session.execute(query)).all()]

    async def test_the_relay_is_told_on_commit_only_when_rows_went_in(
        self, make_uow: UowFactory, settings: Settings
    ) -> None:
        notices: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(
            make_url(settings.database_url).set(drivername="postgresql").render_as_string(False)
        )
        try:
            await listener.add_listener(OUTBOX_CHANNEL, lambda *args: notices.put_nowait(args[2]))
            events = lifecycle(samples.new_id("batch-"), ["e1", "e2"], user_id=samples.new_id("teacher-"))
            async with make_uow() as uow:  # written but not committed: nothing told
                await uow.claim([(uuid.UUID(e["event_id"]), record_of(e)) for e in events])
                for envelope in [decoded(e) for e in events]:
                    await HANDLERS_BY_TOPIC[envelope.event_type](envelope, uow)
                await uow.flush()
            await self.ingest(make_uow, events)
            await asyncio.wait_for(notices.get(), timeout=10)
            await self.ingest(make_uow, [dict(e, event_id=str(uuid.uuid4())) for e in events])  # nothing new due
            await self.ingest(make_uow, lifecycle(samples.new_id("batch-"), ["e1"], user_id=samples.new_id("teacher-")))
            await asyncio.wait_for(notices.get(), timeout=10)  # the third commit's
            assert notices.empty()
        finally:
            await listener.close()

    async def test_a_change_another_worker_committed_is_read_back_despite_the_cache(self, make_uow: UowFactory) -> None:
        batch_id = samples.new_id("batch-")
        await self.ingest(make_uow, [samples.batch_registered(batch_id, ["e1"])])  # cached by "this" worker
        other_worker = self.sessions()
        self.opened.append(other_worker)
        slot = samples.slot_assigned(batch_id, "e1", file_name="by-the-other-worker.docx")
        await process_batch(
            [record_of(slot)], SqlAlchemyUnitOfWork(other_worker), SetSeenEventHints(), RecordingChangeSink()
        )
        await self.ingest(make_uow, [samples.spellcheck_result(batch_id, "e1")])
        essay = (await self.read(make_uow, batch_id)).essays["e1"]
        assert essay.slot is not None and essay.slot.original_file_name == "by-the-other-worker.docx"
        assert essay.spellcheck is not None

    async def test_a_cache_smaller_than_the_micro_batch_never_loses_a_batchs_facts(self, make_uow: UowFactory) -> None:
        """Caching what a load reads may evict an entry the same load counts on as a hit."""
        tiny = FactsCache(capacity=2)

        def make() -> UnitOfWork:
            self.opened.append(self.sessions())
            return SqlAlchemyUnitOfWork(self.opened[-1], tiny)

        batch_ids = sorted(samples.new_id("batch-") for _ in range(3))
        for batch_id in batch_ids:  # the cache ends up holding the last two
            await self.ingest(make, [samples.batch_registered(batch_id, ["e1"])])
        await self.ingest(make, [samples.slot_assigned(batch_id, "e1") for batch_id in batch_ids])
        for batch_id in batch_ids:
            batch = await self.read(make, batch_id)
            assert batch.is_registered and batch.essays["e1"].slot is not None

    async def test_the_cache_counts_its_hits_misses_new_batches_and_evictions(self, make_uow: UowFactory) -> None:
        registry = CollectorRegistry()
        lookups = Counter("lookups", "", ["result"], registry=registry)
        evictions = Counter("evictions", "", registry=registry)
        counted = FactsCache(capacity=1, lookups=lookups, evictions=evictions)

        def make() -> UnitOfWork:
            self.opened.append(self.sessions())
            return SqlAlchemyUnitOfWork(self.opened[-1], counted)

        def tally() -> dict[str, float]:
            found = {r: registry.get_sample_value("lookups_total", {"result": r}) for r in ("hit", "miss", "new")}
            found["evicted"] = registry.get_sample_value("evictions_total")
            return {name: n or 0.0 for name, n in found.items()}

        first, second = samples.new_id("batch-"), samples.new_id("batch-")
        await self.ingest(make, [samples.batch_registered(first, ["e1"])])
        assert tally() == {"hit": 0, "miss": 0, "new": 1, "evicted": 0}
        await self.ingest(make, [samples.slot_assigned(first, "e1")])
        assert tally() == {"hit": 1, "miss": 0, "new": 1, "evicted": 0}
        await self.ingest(make, [samples.batch_registered(second, ["e1"])])  # evicts the first
        assert tally() == {"hit": 1, "miss": 0, "new": 2, "evicted": 1}
        await self.ingest(make, [samples.spellcheck_result(first, "e1")])
        assert tally() == {"hit": 1, "miss": 1, "new": 2, "evicted": 2}
