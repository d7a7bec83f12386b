"""`ras parked` against the real PostgreSQL and Redis: list (with filters), summary, show, replay
(one or in bulk), discard, JSON output and exit codes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import random
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dishka import AsyncContainer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from common_core import topics
from result_aggregator_service.adapters.parked_events import SqlAlchemyParkedEventStore
from result_aggregator_service.adapters.tables import parked_events, processed_events
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ingest import IngestReport, park_unprocessable, process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, ParkReason, RawRecord, SeenEventHints, UnitOfWork
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of
from result_aggregator_service.tests.integration.cli_support import json_of, one_line_error, ras

REPO_ROOT = Path(__file__).resolve().parents[4]
UNKNOWN_ID = 2**62


@pytest.fixture(autouse=True)
def _migrated(settings: Settings) -> None:
    """The `settings` fixture migrates the database the CLI reaches through os.environ."""


def unique_record(sample: dict[str, Any], value: bytes | None = None, topic: str | None = None) -> RawRecord:
    """A record at a random partition and offset: parked rows of earlier runs share the database."""
    record = record_of(sample, topic=topic, value=value)
    return dataclasses.replace(record, partition=random.randrange(2**30), offset=random.randrange(2**62))


async def ingest(container: AsyncContainer, record: RawRecord) -> IngestReport:
    async with container() as request:
        return await process_batch(
            [record], await request.get(UnitOfWork), await request.get(SeenEventHints), await request.get(ChangeSink)
        )


async def park_as_internal(container: AsyncContainer, record: RawRecord) -> int:
    async with container() as request:
        error = RuntimeError("database exploded")
        await park_unprocessable(record, ParkReason.INTERNAL, error, await request.get(UnitOfWork))
    return await parked_id_of(container, record)


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


def invalid_registration() -> tuple[dict[str, Any], RawRecord]:
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    del sample["data"]["essay_ids"]  # a missing required field: a schema error
    return sample, unique_record(sample)


def rejected_registration() -> tuple[dict[str, Any], RawRecord]:
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    sample["data"]["expected_essay_count"] = -1  # well-formed, but the rules reject it
    return sample, unique_record(sample)


def valid_registration() -> tuple[dict[str, Any], RawRecord]:
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    return sample, unique_record(sample)


async def test_list_and_show_print_the_record_with_its_raw_bytes_and_reason_as_json(container: AsyncContainer) -> None:
    _, record = invalid_registration()
    report = await ingest(container, record)
    assert [p.reason for p in report.parked] == [ParkReason.SCHEMA_INVALID]
    parked_id = await parked_id_of(container, record)

    listed = await ras("parked", "list", "--after", str(parked_id - 1), "--limit", "1", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json_of(listed)
    assert (row["id"], row["state"], row["reason"]) == (parked_id, "parked", "schema_invalid")
    assert (row["topic"], row["partition"], row["offset"]) == (record.topic, record.partition, record.offset)
    assert row["value"].encode() == record.value and row["value_encoding"] == "utf-8"
    assert "essay_ids" in row["error"]

    shown = await ras("parked", "show", str(parked_id), "--json")
    assert shown.exit_code == 0 and json_of(shown) == row
    as_text = await ras("parked", "show", str(parked_id))
    assert as_text.exit_code == 0 and "schema_invalid" in as_text.stdout and record.topic in as_text.stdout


async def test_show_prints_a_value_that_is_not_utf8_as_base64(container: AsyncContainer) -> None:
    record = unique_record(samples.batch_registered(samples.new_id("batch-"), ["e1"]), value=b"\xff\xfe{not json")
    await ingest(container, record)
    shown = json_of(await ras("parked", "show", str(await parked_id_of(container, record)), "--json"))
    assert shown["reason"] == "undecodable"
    assert (base64.b64decode(shown["value"]), shown["value_encoding"]) == (record.value, "base64")


async def test_list_and_summary_filter_by_topic_reason_and_time(container: AsyncContainer) -> None:
    since = datetime.now(UTC).isoformat()
    _, invalid = invalid_registration()
    undecodable = unique_record({"event_type": topics.SPELLCHECK_RESULTS_TOPIC}, value=b"{broken")
    for record in (invalid, undecodable):
        await ingest(container, record)
    invalid_id, undecodable_id = await parked_id_of(container, invalid), await parked_id_of(container, undecodable)

    async def listed(*filters: str) -> list[int]:
        result = await ras("parked", "list", "--since", since, "--limit", "1000", "--json", *filters)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json_of(result)]

    assert {invalid_id, undecodable_id} <= set(await listed())
    assert invalid_id in await listed("--reason", "schema_invalid")
    assert undecodable_id not in await listed("--reason", "schema_invalid")
    assert await listed("--topic", topics.SPELLCHECK_RESULTS_TOPIC, "--reason", "undecodable") == [undecodable_id]
    assert await listed("--until", since) == []
    # an age instead of a time (the last --since wins); narrowed, as other tests park thousands at once
    assert invalid_id in await listed("--since", "5m", "--reason", "schema_invalid", "--topic", invalid.topic)

    summary = await ras("parked", "summary", "--since", since, "--topic", topics.SPELLCHECK_RESULTS_TOPIC, "--json")
    assert summary.exit_code == 0, summary.output
    assert [(r["topic"], r["reason"], r["count"]) for r in json_of(summary)] == [
        (topics.SPELLCHECK_RESULTS_TOPIC, "undecodable", 1)
    ]
    table = await ras("parked", "summary", "--since", since)
    assert table.exit_code == 0 and "undecodable" in table.stdout and "total" in table.stdout


async def test_discarding_marks_it_discarded_and_it_leaves_the_parked_list(container: AsyncContainer) -> None:
    _, record = invalid_registration()
    await ingest(container, record)
    parked_id = await parked_id_of(container, record)

    discarded = await ras("parked", "discard", str(parked_id), "--json")
    assert discarded.exit_code == 0, discarded.output
    assert json_of(discarded) == {"results": [{"id": parked_id, "result": "discarded"}], "summary": {"discarded": 1}}
    assert await state_of(container, parked_id) == "discarded"
    still_parked = json_of(await ras("parked", "list", "--after", str(parked_id - 1), "--limit", "1", "--json"))
    assert parked_id not in [row["id"] for row in still_parked]
    listed = await ras("parked", "list", "--state", "discarded", "--after", str(parked_id - 1), "--json")
    assert json_of(listed)[0]["id"] == parked_id

    again = await ras("parked", "discard", str(parked_id), "--json")
    assert again.exit_code == 1
    assert json_of(again)["results"] == [
        {"id": parked_id, "result": "not_parked", "error": "not parked: its state is discarded"}
    ]


async def test_replaying_a_valid_event_parked_as_internal_applies_it(container: AsyncContainer) -> None:
    sample, record = valid_registration()
    parked_id = await park_as_internal(container, record)
    assert not await is_registered(container, sample["data"]["entity_id"])

    replayed = await ras("parked", "replay", str(parked_id), "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json_of(replayed)["results"] == [{"id": parked_id, "result": "replayed"}]
    assert await is_registered(container, sample["data"]["entity_id"])
    assert await state_of(container, parked_id) == "replayed"
    assert await claim_count(container, sample["event_id"]) == 1
    assert (await ras("parked", "replay", str(parked_id))).exit_code == 1  # resolved rows stay resolved


async def test_replay_releases_the_claim_so_a_claimed_and_hinted_event_applies(container: AsyncContainer) -> None:
    """A rejected event is claimed, parked and remembered in Redis; replay must still get it through."""
    sample, record = valid_registration()
    event_id = uuid.UUID(sample["event_id"])
    async with container() as request:
        uow = await request.get(UnitOfWork)
        async with uow:
            assert await uow.claim([(event_id, record)]) == {event_id}
            await uow.parked.park(record, ParkReason.REJECTED, "rejected by yesterday's rules", event_id)
            await uow.commit()
        await (await request.get(SeenEventHints)).remember([event_id])
    parked_id = await parked_id_of(container, record)

    replayed = await ras("parked", "replay", str(parked_id), "--json")
    assert json_of(replayed)["results"] == [{"id": parked_id, "result": "replayed"}]
    assert await is_registered(container, sample["data"]["entity_id"])
    assert await claim_count(container, sample["event_id"]) == 1


async def test_replaying_a_rejected_event_still_fails_and_leaves_it_parked_and_claimed(
    container: AsyncContainer,
) -> None:
    sample, record = rejected_registration()
    report = await ingest(container, record)
    assert [p.reason for p in report.parked] == [ParkReason.REJECTED]
    parked_id = await parked_id_of(container, record)

    replayed = await ras("parked", "replay", str(parked_id), "--json")
    assert replayed.exit_code == 1
    [outcome] = json_of(replayed)["results"]
    assert (outcome["result"], outcome["reason"]) == ("still_failing", "rejected")
    assert "expected_essay_count is negative" in outcome["error"]
    assert await state_of(container, parked_id) == "parked"
    assert await claim_count(container, sample["event_id"]) == 1
    assert not await is_registered(container, sample["data"]["entity_id"])


async def test_bulk_replay_selects_by_filters_and_prints_a_summary(container: AsyncContainer) -> None:
    since = datetime.now(UTC).isoformat()
    registrations = [valid_registration() for _ in range(3)]
    ids = [await park_as_internal(container, record) for _, record in registrations]
    slot = samples.slot_assigned(samples.new_id("batch-"), "e1")
    slot_id = await park_as_internal(container, unique_record(slot))

    by_topic = await ras(
        "parked", "replay", "--topic", topics.BATCH_ESSAYS_REGISTERED_TOPIC, "--reason", "internal",
        "--since", since, "--json",
    )  # fmt: skip
    assert by_topic.exit_code == 0, by_topic.output
    assert json_of(by_topic) == {
        "results": [{"id": parked_id, "result": "replayed"} for parked_id in ids],
        "summary": {"replayed": 3},
    }
    for sample, _ in registrations:
        assert await is_registered(container, sample["data"]["entity_id"])
    assert await state_of(container, slot_id) == "parked"

    everything_since = await ras("parked", "replay", "--all", "--since", since)
    assert everything_since.exit_code == 0, everything_since.output
    assert "replay: 1 event(s)" in everything_since.stdout and "replayed" in everything_since.stdout
    assert await state_of(container, slot_id) == "replayed"


@pytest.mark.parametrize("command", ["show", "replay", "discard"])
async def test_an_unknown_id_exits_1_with_one_line(command: str) -> None:
    result = await ras("parked", command, str(UNKNOWN_ID))
    assert result.exit_code == 1
    if command == "show":
        assert one_line_error(result) == f"error: parked event {UNKNOWN_ID}: unknown id"
    else:
        assert "unknown" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["parked"],
        ["parked", "bogus"],
        ["parked", "show"],
        ["parked", "show", "abc"],
        ["parked", "list", "--limit", "0"],
        ["parked", "list", "--state", "x"],
        ["parked", "list", "--since", "yesterday"],
        ["parked", "replay"],
        ["parked", "replay", "1", "--all"],
    ],
)
async def test_a_usage_error_exits_2(argv: list[str]) -> None:
    result = await ras(*argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


async def test_an_unreachable_database_exits_3_with_one_line() -> None:
    closed = "postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none"
    result = await ras("parked", "list", env={"DATABASE_URL": closed})
    assert result.exit_code == 3
    assert one_line_error(result).startswith("error: unreachable: ")


async def test_the_console_script_lists_parked_events(container: AsyncContainer) -> None:
    _, record = invalid_registration()
    await ingest(container, record)
    parked_id = await parked_id_of(container, record)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "result_aggregator_service.cli"),
        *("parked", "list", "--after", str(parked_id - 1), "--limit", "1", "--json"),
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    [row] = json.loads(stdout)
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


async def test_a_database_not_migrated_is_named_in_one_line(fresh_database_url: str) -> None:
    result = await ras("parked", "list", env={"DATABASE_URL": fresh_database_url})
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: the database is not migrated (run `ras migrate`)")
