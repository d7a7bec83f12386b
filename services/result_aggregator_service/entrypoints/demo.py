"""Demo producer: publishes realistic batch lifecycles (`lifecycles.py`) to Kafka so the service has
something to show, and prints where to look. A few batches progress at once, some of their events out
of order or twice, the way the platform delivers them.

Run: `pdm run demo [--batches 12] [--rate 10] [--duration SECONDS] [--users 3] [--seed N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from result_aggregator_service.config import DEVELOPMENT_API_KEY, Environment, Settings
from result_aggregator_service.lifecycles import Lifecycle, batch_lifecycle, delivered
from result_aggregator_service.wire_events import JsonDict

DEMO_SERVICE_ID = "bff-teacher-service"


@dataclass(frozen=True)
class DemoPlan:
    users: Sequence[str] = ("demo-teacher-1", "demo-teacher-2", "demo-teacher-3")
    batches: int | None = 12  # None: until `duration` ends
    rate: float = 10.0  # events per second
    duration: float | None = None  # seconds; stops even mid-batch
    in_flight: int = 4  # batches progressing at the same time
    out_of_order: float = 0.1
    duplicated: float = 0.05
    seed: int | None = None


@dataclass
class DemoReport:
    lifecycles: list[Lifecycle] = field(default_factory=list)  # every batch started, in start order
    finished: list[Lifecycle] = field(default_factory=list)  # every batch whose events were all sent
    events_sent: int = 0
    seconds: float = 0.0


async def run_demo(settings: Settings, plan: DemoPlan, out: TextIO = sys.stdout) -> DemoReport:
    """Publish the plan's lifecycles to the settings' Kafka at `plan.rate` events per second."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    try:
        return await _publish(producer, settings, plan, out)
    finally:
        await producer.stop()


async def _publish(producer: AIOKafkaProducer, settings: Settings, plan: DemoPlan, out: TextIO) -> DemoReport:
    rng, report, started = random.Random(plan.seed), DemoReport(), time.monotonic()
    in_flight: list[tuple[Lifecycle, list[JsonDict]]] = []
    step = timedelta(seconds=plan.in_flight / plan.rate)

    def start_batch() -> None:
        user = plan.users[len(report.lifecycles) % len(plan.users)]
        lifecycle = batch_lifecycle(rng, user, start=datetime.now(UTC), step=step)
        events = delivered(lifecycle.events, rng, out_of_order=plan.out_of_order, duplicated=plan.duplicated)
        report.lifecycles.append(lifecycle)
        in_flight.append((lifecycle, events))

    _print_plan(settings, plan, out)
    while True:
        while len(in_flight) < plan.in_flight and (plan.batches is None or len(report.lifecycles) < plan.batches):
            start_batch()
            if len(report.lifecycles) == 1:
                _print_where_to_look(settings, report.lifecycles[0], out)
        elapsed = time.monotonic() - started
        if not in_flight or (plan.duration is not None and elapsed >= plan.duration):
            break
        lifecycle, events = rng.choice(in_flight)
        await _send(producer, events.pop(0))
        report.events_sent += 1
        if not events:
            in_flight.remove((lifecycle, events))
            report.finished.append(lifecycle)
            status = lifecycle.expected["overall_status"]
            print(f"    batch {lifecycle.batch_id} ({lifecycle.user_id}) fully sent; expect {status}", file=out)
        await asyncio.sleep(max(0.0, started + report.events_sent / plan.rate - time.monotonic()))
    await producer.flush()
    report.seconds = time.monotonic() - started
    print(f"==> demo: sent {report.events_sent} events of {len(report.lifecycles)} batches "
          f"({len(report.finished)} complete) in {report.seconds:.1f} s", file=out)  # fmt: skip
    return report


async def _send(producer: AIOKafkaProducer, event: JsonDict) -> None:
    data = event["data"]
    headers = [(name, str(event[name]).encode()) for name in ("event_id", "event_type", "source_service")]
    key = str(data.get("batch_id") or data.get("entity_id")).encode()
    value = json.dumps(event).encode()
    await producer.send(event["event_type"], value, key=key, headers=[*headers, ("content_type", b"application/json")])


def _print_plan(settings: Settings, plan: DemoPlan, out: TextIO) -> None:
    batches = "batches" if plan.batches is None else f"{plan.batches} batches"
    until = f" for {plan.duration:g} s" if plan.duration is not None else ""
    print(f"==> demo: publishing {batches} of {len(plan.users)} users at {plan.rate:g} events/s{until} "
          f"to Kafka at {settings.kafka_bootstrap_servers}", file=out)  # fmt: skip


def _print_where_to_look(settings: Settings, first: Lifecycle, out: TextIO) -> None:
    base = f"http://{settings.http_host}:{settings.http_port}"
    development = settings.environment is Environment.DEVELOPMENT and settings.api_key() == DEVELOPMENT_API_KEY
    shown_key = DEVELOPMENT_API_KEY if development else "$RESULT_AGGREGATOR_INTERNAL_API_KEY"  # never a secret
    curl = f"curl -s -H 'X-Internal-API-Key: {shown_key}' -H 'X-Service-ID: {DEMO_SERVICE_ID}'"
    print(f"    a batch:          {curl} {base}/internal/v1/batches/{first.batch_id}/status", file=out)
    print(f"    a user's batches: {curl} '{base}/internal/v1/batches/user/{first.user_id}?limit=5'", file=out)
    print(f"    docs page:        {base}/docs   (health: {base}/healthz)", file=out)


def parse_plan(argv: Sequence[str] | None = None) -> DemoPlan:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, help="how many batches (default 12; unlimited with --duration)")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second (default 10)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--users", type=int, default=3, help="how many teachers own the batches (default 3)")
    parser.add_argument("--seed", type=int, help="repeat a run's batch ids and choices")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.users < 1 or (args.batches is not None and args.batches < 1):
        parser.error("--rate must be > 0, --users and --batches >= 1")
    batches = args.batches if args.batches is not None else (None if args.duration is not None else 12)
    users = tuple(f"demo-teacher-{n}" for n in range(1, args.users + 1))
    return DemoPlan(users=users, batches=batches, rate=args.rate, duration=args.duration, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> None:
    settings, plan = Settings(), parse_plan(argv)
    try:
        asyncio.run(run_demo(settings, plan))
    except KafkaConnectionError as error:
        sys.exit(f"demo: Kafka unreachable at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS): {error}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
