"""One fault scenario's test bench: the faulted workers and their API, the load, the claim tracker and
the stale reader; at the end the reference (worker + API on a fresh database) and the verifier."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
from aiokafka import AIOKafkaProducer

from common_core.topics import CONSUMED_TOPICS
from conftest import migrate
from result_aggregator_service.config import Settings
from tests.faults import verifier
from tests.faults.claims import ClaimTracker, engine_for
from tests.faults.load import LoadDriver
from tests.faults.profile import Profile
from tests.faults.reader import StaleReader
from tests.faults.services import ApiProcess, WorkerProcess, worker_env
from tests.faults.verifier import FaultTiming, Figures
from tests.kafka_groups import position_group_at_end

REFERENCE_REDIS_DB = "/1"  # the reference's cache and hints stay apart from the faulted system's


class FaultBench:
    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        new_database: Callable[[], Awaitable[str]],
        profile: Profile,
    ) -> None:
        self.settings, self.producer, self.profile = settings, producer, profile
        self._new_database = new_database
        self.workers: list[WorkerProcess] = []
        self.kills = self.restarts = 0
        self._cleared: list[tuple[str, float]] = []
        self._closers: list[Callable[[], Awaitable[object] | object]] = []

    async def start(
        self,
        workers: int = 1,
        *,
        database_url: str | None = None,
        worker_database_url: str = "",
        extra_topics: tuple[str, ...] = (),
        worker_settings: dict[str, str] | None = None,
    ) -> None:
        """Faulted workers (reaching the database through `worker_database_url` if given), their API,
        the load (not yet running), the tracker and the reader. The reference's group is positioned now."""
        self.database_url = database_url or self.settings.database_url
        run = uuid.uuid4().hex[:8]
        self.group, self._reference_group = f"ras-faults-{run}", f"ras-faults-reference-{run}"
        for group in (self.group, self._reference_group):
            await position_group_at_end(self.settings.kafka_bootstrap_servers, group)
        self.env = worker_env(worker_database_url or self.database_url, self.settings.redis_url, self.group)
        if extra_topics:
            self.env["RESULT_AGGREGATOR_SUBSCRIBED_TOPICS"] = json.dumps([*CONSUMED_TOPICS, *extra_topics])
        self.env.update(worker_settings or {})
        self.workers = [WorkerProcess(f"w{n}-{run}", self.env).start() for n in range(workers)]
        self._closers += [w.stop for w in self.workers]
        self.api, self.client = await self._api("faulted", self.database_url, self.settings.redis_url)
        self.load = LoadDriver(self.producer, self.profile.rate, self.profile.events, self.profile.load_seconds)
        self.tracker = ClaimTracker(self.database_url, self.load.published).start()
        self.reader = StaleReader(self.client, self.load.recent_batch_ids).start()
        self._closers += [self.tracker.close, self.reader.stop]

    def add_worker(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(name, self.env).start()
        self.workers.append(worker)
        self._closers.append(worker.stop)
        return worker

    def run_load(self, events: int | None = None, rate: float | None = None) -> asyncio.Task[None]:
        self.load.max_events = events or self.profile.events
        self.load.rate = rate or self.profile.rate
        self.load.max_seconds = self.load.max_events / self.load.rate * 2 + 30
        self._load_task = asyncio.create_task(self.load.run())
        return self._load_task

    async def until_published(self, count: int) -> None:
        while True:
            if len(self.load.published) >= count:
                return
            assert not self._load_task.done(), f"the load ended before {count} events were published"
            await asyncio.sleep(0.05)

    def cleared(self, fault: str) -> float:
        """Mark the moment a fault ended (a restart spawned, a server back): recovery is timed from here."""
        moment = time.monotonic()
        self._cleared.append((fault, moment))
        return moment

    async def progress_after(self, moment: float, what: str) -> float:
        """Seconds until the first event is applied after `moment`; fails after the recovery bound."""
        deadline = moment + self.profile.recovery_bound_seconds
        while (seconds := self.tracker.first_claim_after(moment)) is None:
            for worker in self.workers:
                if worker.process is not None and worker.process.returncode is None:
                    worker.assert_alive()
            assert time.monotonic() < deadline, f"nothing applied within the bound after {what}"
            await asyncio.sleep(0.1)
        return seconds

    async def verify(self, scenario: str, load: asyncio.Task[None]) -> Figures:
        """Wait (bounded) for the load and the catch-up, then compare with the reference; the figures."""
        await load
        load_end = time.monotonic()
        reference_db = await self._new_database()
        await migrate(reference_db, "upgrade", "head")
        reference_redis = _with_path(self.settings.redis_url, REFERENCE_REDIS_DB)
        reference = WorkerProcess(
            f"reference-{self.group}", worker_env(reference_db, reference_redis, self._reference_group)
        )
        self._closers.append(reference.start().stop)
        reference_tracker = ClaimTracker(reference_db, self.load.published).start()
        self._closers.append(reference_tracker.close)
        _, reference_client = await self._api("reference", reference_db, reference_redis)

        caught_up = await self._catch_up()
        await self.reader.stop()
        figures = self._figures(scenario, caught_up, load_end)
        assert await reference_tracker.wait_all(self.profile.catch_up_seconds), "the reference did not catch up"
        await self._compare(figures, reference_client)
        return figures

    async def _catch_up(self) -> bool:
        """Wait for every event's claim; give up early once all the missing ones are parked (a defect the
        verifier then reports, not a worker still busy)."""
        deadline = time.monotonic() + self.profile.catch_up_seconds
        batch_of = {p.event_id: p.batch_id for p in self.load.published}
        engine = engine_for(self.database_url)
        try:
            while not await self.tracker.wait_all(2.0):
                missing = self.tracker.missing
                parked = await verifier.parked(engine, missing, sorted({batch_of[e] for e in missing}))
                if time.monotonic() > deadline or len(parked) >= len(missing):
                    return False
        finally:
            await engine.dispose()
        return True

    async def close(self) -> None:
        for close in reversed(self._closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result

    def _figures(self, scenario: str, caught_up: bool, load_end: float) -> Figures:
        figures = Figures(scenario, self.profile.name, kills=self.kills, restarts=self.restarts)
        figures.events, figures.batches = len(self.load.published), len(self.load.batch_ids)
        figures.lost = len(self.tracker.missing)
        figures.examples += [f"lost {event_id}" for event_id in self.tracker.missing[:5]]
        last_claim = max(self.tracker.claimed_at.values(), default=load_end)
        figures.catch_up_seconds = max(last_claim - load_end, 0.0) if caught_up else None
        figures.stale_reads, figures.reads, figures.read_errors = (
            len(self.reader.stale),
            self.reader.reads,
            self.reader.errors,
        )
        figures.examples += self.reader.stale[:5]
        figures.faults = [
            FaultTiming(fault, self.tracker.first_claim_after(at), self.tracker.caught_up_after(at))
            for fault, at in self._cleared
        ]
        return figures

    async def _compare(self, figures: Figures, reference_client: httpx.AsyncClient) -> None:
        event_ids = [p.event_id for p in self.load.published]
        engine = engine_for(self.database_url)
        try:
            doubled = await verifier.double_applied(engine, event_ids)
            parked = await verifier.parked(engine, event_ids, self.load.batch_ids)
        finally:
            await engine.dispose()
        differing = await verifier.differing_batches(self.client, reference_client, self.load.batch_ids)
        figures.double_applied, figures.wrongly_parked, figures.mismatched_batches = (
            len(doubled),
            len(parked),
            len(differing),
        )
        figures.examples += [f"applied twice: {d}" for d in doubled[:3]] + parked[:3] + differing[:3]

    async def _api(self, name: str, database_url: str, redis_url: str) -> tuple[ApiProcess, httpx.AsyncClient]:
        api = ApiProcess(f"{name}-{self.group}", database_url, redis_url).start()
        client = api.client()
        self._closers += [api.stop, client.aclose]
        await api.wait_healthy(client)
        return api, client


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))
