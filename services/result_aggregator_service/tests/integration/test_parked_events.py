"""The operator's parked-events tool against the real PostgreSQL and Redis: list, show, replay, discard."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common_core import topics
from result_aggregator_service.adapters.parked_events import SqlAlchemyParkedEventStore
from result_aggregator_service.adapters.tables import parked_events, processed_events
from result_aggregator_service.entrypoints.parked import run
from result_aggregator_service.service_layer.ingest import IngestReport, park_unprocessable, process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, ParkReason, RawRecord, SeenEventHints, UnitOfWork
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of

REPO_ROOT = Path(__file__).resolve().parents[4]
UNKNOWN_ID = 2**62


def unique_record(sample: dict[str, Any], value: bytes | None = None) -> RawRecord:
    """A record at a random partition and offset: parked rows of earlier runs share the database."""
    record = record_of(sample, value=value)
    return dataclasses.replace(record, partition=random.randrange(2**30), offset=random.randrange(2**62))


async def ingest(container: AsyncContainer, record: RawRecord) -> IngestReport:
    async with container() as request:
        return await process_batch(
            [record], await request.get(UnitOfWork), await request.get(SeenEventHints), await request.get(ChangeSink)
        )


async def parked_id_of(container: AsyncContainer, record: RawRecord) -> int:
    async with container() as request:
        session = await request.get(AsyncSession)
        query = select(parked_events.c.id).where(
            parked_events.c.topic == record.topic,
            parked_events.c.partition == record.partition,
            parked_events.c.offset == record.offset,
        )
        return int((await session.execute(query)).scalar_one())


async def state_of(container: AsyncContainer, parked_id: int) -> str:
    async with container() as request:
        parked = await SqlAlchemyParkedEventStore(await request.get(AsyncSession)).get(parked_id)
        assert parked is not None
        return parked.state


async def claim_count(container: AsyncContainer, event_id: str) -> int:
    async with container() as request:
        session = await request.get(AsyncSession)
        query = select(func.count()).select_from(processed_events).where(processed_events.c.event_id == event_id)
        return int((await session.execute(query)).scalar_one())


async def is_registered(container: AsyncContainer, batch_id: str) -> bool:
    async with container() as request, await request.get(UnitOfWork) as uow:
        return bool((await uow.batches.get(batch_id)).is_registered)


async def cli(container: AsyncContainer, *argv: str) -> tuple[int, list[Any]]:
    """Run the tool in-process: its exit code and the JSON it printed (one object per line, or one indented)."""
    out = io.StringIO()
    code = await run(argv, container, out)
    text = out.getvalue().strip()
    if argv[0] == "show" and text:
        return code, [json.loads(text)]
    return code, [json.loads(line) for line in text.splitlines()]


def invalid_registration() -> tuple[dict[str, Any], RawRecord]:
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    del sample["data"]["essay_ids"]  # a missing required field: a schema error
    return sample, unique_record(sample)


def rejected_registration() -> tuple[dict[str, Any], RawRecord]:
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    sample["data"]["expected_essay_count"] = -1  # well-formed, but the rules reject it
    return sample, unique_record(sample)


async def test_a_schema_invalid_record_is_listed_with_its_raw_bytes_and_reason(
    container: AsyncContainer,
) -> None:
    _, record = invalid_registration()
    report = await ingest(container, record)
    assert [p.reason for p in report.parked] == [ParkReason.SCHEMA_INVALID]
    parked_id = await parked_id_of(container, record)

    code, listed = await cli(container, "list", "--after", str(parked_id - 1), "--limit", "1")
    assert code == 0
    [row] = listed
    assert (row["id"], row["state"], row["reason"]) == (parked_id, "parked", "schema_invalid")
    assert (row["topic"], row["partition"], row["offset"]) == (record.topic, record.partition, record.offset)
    assert row["value"].encode() == record.value and row["value_encoding"] == "utf-8"
    assert "essay_ids" in row["error"]

    code, [shown] = await cli(container, "show", str(parked_id))
    assert code == 0 and shown == row


async def test_show_prints_a_value_that_is_not_utf8_as_base64(
    container: AsyncContainer,
) -> None:
    record = unique_record(samples.batch_registered(samples.new_id("batch-"), ["e1"]), value=b"\xff\xfe{not json")
    await ingest(container, record)
    code, [shown] = await cli(container, "show", str(await parked_id_of(container, record)))
    assert code == 0 and shown["reason"] == "undecodable"
    assert (base64.b64decode(shown["value"]), shown["value_encoding"]) == (record.value, "base64")


async def test_discarding_marks_it_discarded_and_it_leaves_the_parked_list(
    container: AsyncContainer,
) -> None:
    _, record = invalid_registration()
    await ingest(container, record)
    parked_id = await parked_id_of(container, record)

    assert await cli(container, "discard", str(parked_id)) == (0, [{"id": parked_id, "result": "discarded"}])
    assert await state_of(container, parked_id) == "discarded"
    _, still_parked = await cli(container, "list", "--after", str(parked_id - 1), "--limit", "1")
    assert parked_id not in [row["id"] for row in still_parked]
    _, discarded = await cli(container, "list", "--state", "discarded", "--after", str(parked_id - 1))
    assert discarded[0]["id"] == parked_id
    assert await cli(container, "discard", str(parked_id)) == (1, [])  # no longer parked


async def test_replaying_a_valid_event_parked_as_internal_applies_it(
    container: AsyncContainer,
) -> None:
    batch_id = samples.new_id("batch-")
    sample = samples.batch_registered(batch_id, [samples.new_id("essay-")])
    record = unique_record(sample)
    async with container() as request:
        await park_unprocessable(
            record, ParkReason.INTERNAL, RuntimeError("database exploded"), await request.get(UnitOfWork)
        )
    parked_id = await parked_id_of(container, record)
    assert not await is_registered(container, batch_id)

    code, output = await cli(container, "replay", str(parked_id))
    assert (code, output) == (0, [{"id": parked_id, "result": "replayed"}])
    assert await is_registered(container, batch_id)
    assert await state_of(container, parked_id) == "replayed"
    assert await claim_count(container, sample["event_id"]) == 1
    assert await cli(container, "replay", str(parked_id)) == (1, [])  # resolved rows stay resolved


async def test_replay_releases_the_claim_so_a_claimed_and_hinted_event_applies(
    container: AsyncContainer,
) -> None:
    """A rejected event is claimed, parked and remembered in Redis; replay must still get it through."""
    batch_id = samples.new_id("batch-")
    sample = samples.batch_registered(batch_id, [samples.new_id("essay-")])
    record, event_id = unique_record(sample), uuid.UUID(sample["event_id"])
    async with container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            assert await uow.claim([(event_id, record)]) == {event_id}
            await uow.parked.park(record, ParkReason.REJECTED, "rejected by yesterday's rules", event_id)
            await uow.commit()
        await (await request.get(SeenEventHints)).remember([event_id])
    parked_id = await parked_id_of(container, record)

    assert await cli(container, "replay", str(parked_id)) == (0, [{"id": parked_id, "result": "replayed"}])
    assert await is_registered(container, batch_id)
    assert await claim_count(container, sample["event_id"]) == 1


async def test_replaying_a_rejected_event_still_fails_and_leaves_it_parked_and_claimed(
    container: AsyncContainer,
) -> None:
    sample, record = rejected_registration()
    report = await ingest(container, record)
    assert [p.reason for p in report.parked] == [ParkReason.REJECTED]
    parked_id = await parked_id_of(container, record)

    code, [output] = await cli(container, "replay", str(parked_id))
    assert code == 1
    assert (output["result"], output["reason"]) == ("still_failing", "rejected")
    assert "expected_essay_count is negative" in output["error"]
    assert await state_of(container, parked_id) == "parked"
    assert await claim_count(container, sample["event_id"]) == 1
    assert not await is_registered(container, sample["data"]["entity_id"])


@pytest.mark.parametrize("command", ["show", "replay", "discard"])
async def test_an_unknown_id_exits_1(
    container: AsyncContainer, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert await run([command, str(UNKNOWN_ID)], container) == 1
    assert json.loads(capsys.readouterr().err) == {"id": UNKNOWN_ID, "error": "unknown id"}


@pytest.mark.parametrize(
    "argv", [[], ["bogus"], ["show"], ["show", "abc"], ["list", "--limit", "0"], ["list", "--state", "x"]]
)
async def test_a_usage_error_exits_2(container: AsyncContainer, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        await run(argv, container)
    assert exit_info.value.code == 2


async def test_the_module_lists_parked_events_from_the_command_line(container: AsyncContainer) -> None:
    _, record = invalid_registration()
    await ingest(container, record)
    parked_id = await parked_id_of(container, record)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "result_aggregator_service.entrypoints.parked"),
        *("list", "--after", str(parked_id - 1), "--limit", "1"),
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    [row] = [json.loads(line) for line in stdout.decode().splitlines()]
    assert (row["id"], row["reason"], row["value"].encode()) == (parked_id, "schema_invalid", record.value)


async def test_a_record_is_parked_once_but_other_bytes_at_a_reused_offset_are_parked_too(
    container: AsyncContainer,
) -> None:
    first = unique_record({"event_type": topics.SPELLCHECK_RESULTS_TOPIC}, value=b"{broken one")
    redelivered = dataclasses.replace(first)
    after_the_topic_was_recreated = dataclasses.replace(first, value=b"{broken two")
    for record in (first, redelivered, after_the_topic_was_recreated):
        await ingest(container, record)
    async with container() as request:
        session = await request.get(AsyncSession)
        query = select(parked_events.c.value).where(
            parked_events.c.partition == first.partition, parked_events.c.offset == first.offset
        )
        values = sorted((await session.execute(query)).scalars().all())
    assert values == [b"{broken one", b"{broken two"]
