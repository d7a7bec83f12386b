"""The peer a team would write instead of our worker: aiokafka + asyncpg, no framework, no domain layer.

Per `getmany` batch: `json.loads` each record; claim the event ids with one `INSERT ... SELECT unnest
... ON CONFLICT DO NOTHING RETURNING`; merge each batch's and each essay's facts of the fresh events
into JSONB rows with one `unnest` upsert per table (`facts || new facts`); commit; commit the offsets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from bench.harness import Offsets, group_at

_TABLES = """
CREATE TABLE {p}_processed (event_id uuid PRIMARY KEY);
CREATE TABLE {p}_batches (batch_id text PRIMARY KEY, facts jsonb NOT NULL);
CREATE TABLE {p}_essays (batch_id text, essay_id text, facts jsonb NOT NULL, PRIMARY KEY (batch_id, essay_id));
"""


def _facts(event: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """(batch id, the batch's new facts, each essay's new facts) of one event, keyed by its kind."""
    data, kind = event["data"], event["event_type"].split(".")[-2]
    batch_id = str(data.get("batch_id") or data.get("entity_id"))
    stamp = {"at": event["event_timestamp"], "event_id": event["event_id"]}
    essays: dict[str, dict[str, Any]] = {}
    if "essay_id" in data:
        essays[data["essay_id"]] = {kind: {**data, **stamp}}
    elif kind == "results" and "entity_id" in data:
        essays[data["entity_id"]] = {kind: {**data, **stamp}}
    for result in data.get("essay_results", ()):
        essays[result["essay_id"]] = {kind: {**result, **stamp}}
    return batch_id, {kind: {**{k: v for k, v in data.items() if k != "essay_results"}, **stamp}}, essays


async def plain_consumer_rate(bootstrap_servers: str, dsn: str, starts: Offsets, count: int) -> float:
    prefix = f"plain_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(dsn)
    await connection.execute(_TABLES.format(p=prefix))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=await group_at(bootstrap_servers, starts),
        enable_auto_commit=False,
        max_poll_records=500,
    )
    await consumer.start()
    consumer.subscribe(sorted({tp.topic for tp in starts}))
    try:
        seen, started = 0, 0.0
        while seen < count:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=500)
            events = [json.loads(record.value) for records in fetched.values() for record in records]
            if not events:
                continue
            started = started or time.perf_counter()
            await _apply(connection, prefix, events)
            await consumer.commit()
            seen += len(events)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await connection.execute(f"DROP TABLE {prefix}_processed, {prefix}_batches, {prefix}_essays")
        await connection.close()


async def _apply(connection: asyncpg.Connection, prefix: str, events: list[dict[str, Any]]) -> None:
    async with connection.transaction():
        fresh = {
            row[0]
            for row in await connection.fetch(
                f"INSERT INTO {prefix}_processed SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
                [uuid.UUID(e["event_id"]) for e in events],
            )
        }
        batches: dict[str, dict[str, Any]] = defaultdict(dict)
        essays: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        for event in events:
            if uuid.UUID(event["event_id"]) not in fresh:
                continue
            batch_id, batch_facts, essay_facts = _facts(event)
            batches[batch_id].update(batch_facts)
            for essay_id, facts in essay_facts.items():
                essays[batch_id, essay_id].update(facts)
        await connection.execute(
            f"INSERT INTO {prefix}_batches SELECT * FROM unnest($1::text[], $2::jsonb[])"
            f" ON CONFLICT (batch_id) DO UPDATE SET facts = {prefix}_batches.facts || EXCLUDED.facts",
            list(batches),
            [json.dumps(f) for f in batches.values()],
        )
        await connection.execute(
            f"INSERT INTO {prefix}_essays SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])"
            f" ON CONFLICT (batch_id, essay_id) DO UPDATE SET facts = {prefix}_essays.facts || EXCLUDED.facts",
            [b for b, _ in essays],
            [e for _, e in essays],
            [json.dumps(f) for f in essays.values()],
        )
