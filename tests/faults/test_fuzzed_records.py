"""Hostile records on the consumed topics: each one is applied or parked with a reason, the worker lives
on, and a valid event published after them is applied within a bound."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata
from sqlalchemy import text

from common_core import topics
from result_aggregator_service.tests.contract import sample_envelopes as samples
from tests.faults.bench import FaultBench
from tests.faults.claims import engine_for
from tests.faults.fuzzed_records import FuzzedRecord, draw_records, encode_with
from tests.faults.profile import Profile

pytestmark = pytest.mark.infra
SETTLE_SECONDS = 20.0
NUL_TOPIC = "huleedu.faults.nul-header.v1"  # read by no consumer but the fault test's own worker
_PARKED = text(
    'SELECT topic, partition, "offset", reason FROM parked_events'
    ' WHERE partition = ANY(:partitions) AND "offset" = ANY(:offsets)'
)
_CLAIMED = text("SELECT event_id::text FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))")


async def _publish(bench: FaultBench, records: Sequence[FuzzedRecord]) -> list[RecordMetadata]:
    sent = [await bench.producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
    return list(await asyncio.gather(*sent))


async def _outcomes(
    bench: FaultBench, records: Sequence[FuzzedRecord], where: list[RecordMetadata]
) -> list[str | None]:
    """Per record: `applied`, `parked:<reason>`, or None while neither."""
    engine = engine_for(bench.database_url)
    try:
        async with engine.connect() as connection:
            params = {"partitions": [m.partition for m in where], "offsets": [m.offset for m in where]}
            parked = {(t, p, o): reason for t, p, o, reason in await connection.execute(_PARKED, params)}
            ids = [r.event_id for r in records if r.event_id]
            claimed = {row[0] for row in await connection.execute(_CLAIMED, {"ids": ids})}
    finally:
        await engine.dispose()
    outcomes: list[str | None] = []
    for record, meta in zip(records, where, strict=True):
        reason = parked.get((meta.topic, meta.partition, meta.offset))
        outcomes.append(f"parked:{reason}" if reason else "applied" if record.event_id in claimed else None)
    return outcomes


async def _settle(bench: FaultBench, records: Sequence[FuzzedRecord], where: list[RecordMetadata]) -> list[str | None]:
    deadline = time.monotonic() + SETTLE_SECONDS
    while None in (outcomes := await _outcomes(bench, records, where)) and time.monotonic() < deadline:
        bench.workers[0].assert_alive()
        await asyncio.sleep(0.5)
    return outcomes


async def test_fuzzed_records_are_applied_or_parked_and_a_sentinel_after_them_is_applied(
    bench: FaultBench, profile: Profile
) -> None:
    run_seed = random.randrange(2**32)
    await _fuzz(bench, draw_records(profile.fuzzed_records, run_seed, nul_in_header_names=False), run_seed)


async def test_fuzzed_records_with_nul_in_header_names_are_applied_or_parked(
    bench: FaultBench, profile: Profile
) -> None:
    """The NUL-named header goes to a topic only this test's worker reads (parked there as `unknown_topic`):
    on the shared topics it would stall every other consumer that reads them from an earlier offset."""
    await _create_topic(bench, NUL_TOPIC)
    registration = samples.batch_registered(samples.new_id("fuzz-"), ["e1"])
    header: list[tuple[str, bytes | None]] = [("trace\x00id", b"x")]
    nul_record = FuzzedRecord(NUL_TOPIC, None, samples.to_bytes(registration), header, "NUL in a header name")
    run_seed = random.randrange(2**32)
    drawn = draw_records(profile.fuzzed_records, run_seed, nul_in_header_names=False)
    await _fuzz(bench, [nul_record, *drawn], run_seed, extra_topics=(NUL_TOPIC,))


async def _create_topic(bench: FaultBench, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def _fuzz(
    bench: FaultBench, records: list[FuzzedRecord], run_seed: int, extra_topics: tuple[str, ...] = ()
) -> None:
    """Publish `records`: each is applied or parked within a bound, then a valid sentinel is applied."""
    await bench.start(workers=1, extra_topics=extra_topics)
    where = await _publish(bench, records)
    outcomes = await _settle(bench, records, where)
    unsettled = [
        f"{r.kind} @ {m.topic}/{m.partition}/{m.offset}"
        for r, m, o in zip(records, where, outcomes, strict=True)
        if o is None
    ]
    assert not unsettled, (
        f"hypothesis seed {run_seed}: neither applied nor parked within {SETTLE_SECONDS:.0f}s: {unsettled[:5]}"
    )
    sentinel = samples.batch_registered(samples.new_id("sentinel-"), ["e1"])
    sent = time.monotonic()
    await bench.load.publish_extra([sentinel])
    await bench.progress_after(sent, "the sentinel")
    bench.workers[0].assert_alive()
    counts = {o: outcomes.count(o) for o in set(outcomes) if o}
    print(f"{len(records)} fuzzed records (hypothesis seed {run_seed}): {counts}")


async def test_non_finite_numbers_and_out_of_range_integers_are_parked_as_schema_invalid(bench: FaultBench) -> None:
    records = []
    for field, value in [
        (("data", "assessment_metadata", "llm_temperature"), float("nan")),
        (("data", "assessment_metadata", "comparison_count"), float("inf")),
        (("data", "essay_results", 0, "bt_score"), float("-inf")),
        (("data", "essay_results", 0, "rank"), 2**40),
    ]:
        envelope = samples.sample_of(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, samples.new_id("fuzz-"))
        records.append(_record(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, envelope, field, value))
    registration = samples.sample_of(topics.BATCH_ESSAYS_REGISTERED_TOPIC, samples.new_id("fuzz-"))
    records.append(_record(topics.BATCH_ESSAYS_REGISTERED_TOPIC, registration, ("data", "expected_essay_count"), 2**40))
    spellcheck = samples.sample_of(topics.SPELLCHECK_RESULTS_TOPIC, samples.new_id("fuzz-"))
    records.append(_record(topics.SPELLCHECK_RESULTS_TOPIC, spellcheck, ("data", "corrections_made"), 2**35))
    await bench.start(workers=1)
    where = await _publish(bench, records)
    outcomes = await _settle(bench, records, where)
    assert outcomes == ["parked:schema_invalid"] * len(records), list(
        zip([r.kind for r in records], outcomes, strict=True)
    )


def _record(topic: str, envelope: dict[str, object], path: tuple[object, ...], value: object) -> FuzzedRecord:
    return FuzzedRecord(topic, None, encode_with(envelope, path, value), [], f"{'/'.join(map(str, path))} = {value}")
