"""The worker's last line of defence: a micro-batch that fails for a reason retrying will not cure is
halved until the record that fails is alone, and only that record is parked (`internal`), never skipped."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dishka import AsyncContainer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from result_aggregator_service.adapters.parked_events import ParkedEvent, SqlAlchemyParkedEventStore
from result_aggregator_service.adapters.tables import parked_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.entrypoints import micro_batches
from result_aggregator_service.entrypoints.micro_batches import ingest_until_applied
from result_aggregator_service.service_layer.ports import RawRecord
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of

pytestmark = pytest.mark.infra


@contextlib.asynccontextmanager
async def refusing_batch(sessions: async_sessionmaker[AsyncSession], batch_id: str) -> AsyncIterator[str]:
    """A trigger that makes PostgreSQL refuse every write of `batch_id` (the decode step lets nothing
    through that the columns would refuse, so the test makes the database refuse it); yields its message."""
    name = f"refuse_{uuid.uuid4().hex}"
    message = f"test trigger {name} refuses this batch"
    statements = [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$",
        f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON batches FOR EACH ROW "
        f"WHEN (NEW.batch_id = '{batch_id}') EXECUTE FUNCTION {name}()",
    ]
    async with sessions() as session:
        for statement in statements:
            await session.execute(text(statement))
        await session.commit()
    try:
        yield message
    finally:
        async with sessions() as session:
            await session.execute(text(f"DROP TRIGGER {name} ON batches"))
            await session.execute(text(f"DROP FUNCTION {name}()"))
            await session.commit()


async def test_a_record_the_database_refuses_is_parked_and_its_micro_batch_neighbours_applied(
    container: AsyncContainer,
) -> None:
    good_id, refused_id = samples.new_id("batch-"), samples.new_id("refused-")
    good, refused = samples.batch_registered(good_id, ["e1"]), samples.batch_registered(refused_id, ["e1"])
    records = [record_of(good), record_of(refused)]
    sessions = await container.get(async_sessionmaker[AsyncSession])

    async with refusing_batch(sessions, refused_id) as refusal:
        await ingest_until_applied(container, records)

    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        assert (await uow.batches.get(good_id)).is_registered
    async with sessions() as session:
        query = select(parked_events.c.reason, parked_events.c.error, parked_events.c.value).where(
            parked_events.c.topic == records[1].topic,
            parked_events.c.partition == records[1].partition,
            parked_events.c.offset == records[1].offset,
        )
        reason, error, value = (await session.execute(query)).one()
    assert reason == "internal"
    assert refusal in error
    assert value == records[1].value


async def test_a_refused_record_among_many_is_found_by_halving_in_few_transactions(
    container: AsyncContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [samples.new_id("batch-") for _ in range(64)]
    refused_id = ids[37]
    records = [record_of(samples.batch_registered(batch_id, ["e1"])) for batch_id in ids]
    sessions = await container.get(async_sessionmaker[AsyncSession])
    attempts: list[int] = []
    process = micro_batches._process

    async def counted(container: AsyncContainer, batch: Any) -> Any:
        attempts.append(len(getattr(batch, "records", batch)))
        return await process(container, batch)

    monkeypatch.setattr(micro_batches, "_process", counted)
    async with refusing_batch(sessions, refused_id):
        await ingest_until_applied(container, records)

    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        for batch_id in ids:
            assert (await uow.batches.get(batch_id)).is_registered is (batch_id != refused_id)
    assert (await _parked(container, records[37])).reason == "internal"
    assert attempts[0] == 64
    assert len(attempts) <= 2 * 6 + 1  # two halves per level of 64 = 2^6, not one transaction per record


async def _parked(container: AsyncContainer, record: RawRecord) -> ParkedEvent:
    sessions = await container.get(async_sessionmaker[AsyncSession])
    async with sessions() as session:
        query = select(parked_events.c.id).where(
            parked_events.c.topic == record.topic,
            parked_events.c.partition == record.partition,
            parked_events.c.offset == record.offset,
        )
        parked = await SqlAlchemyParkedEventStore(session).get((await session.execute(query)).scalar_one())
    assert parked is not None
    return parked


async def test_a_record_with_nul_bytes_in_header_keys_and_an_undecodable_body_is_parked_with_its_headers(
    container: AsyncContainer,
) -> None:
    body = b"\x00\xff not json \xc3\x28"
    headers = [("trace\x00id", b"\x00\x01"), ("\udcff\udcfe", b"v"), ("event_id", b"")]
    record = dataclasses.replace(record_of(samples.batch_registered(samples.new_id("batch-"), ["e1"])), value=body)
    record = dataclasses.replace(record, headers=headers, key=b"\x00key\xff")

    await ingest_until_applied(container, [record])

    parked = await _parked(container, record)
    assert (parked.reason, parked.record.value, parked.record.key) == ("undecodable", body, b"\x00key\xff")
    assert parked.record.headers == tuple(headers)


async def test_a_record_that_cannot_be_parked_in_full_is_kept_as_unstorable_with_its_bytes(
    container: AsyncContainer,
) -> None:
    record = record_of(samples.batch_registered(samples.new_id("batch-"), ["e1"]))
    broken = dataclasses.replace(record, value=b"{not json", headers=[(b"not-a-str-key", b"v")])  # type: ignore[list-item]

    await ingest_until_applied(container, [broken])

    parked = await _parked(container, broken)
    assert (parked.reason, parked.record.value, parked.record.headers) == ("unstorable", b"{not json", ())
    assert "parking refused" in parked.error
