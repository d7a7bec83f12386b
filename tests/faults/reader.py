"""A reader polling the API during a scenario: a batch's version (in its ETag) never goes backwards, and
a batch once shown is never 404 again. Anything else is a stale read."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

READS_PER_SECOND = 40
SAMPLE = 60  # the most recently published batches are the ones that change


@dataclass
class StaleReader:
    client: httpx.AsyncClient
    recent_batch_ids: Callable[[int], list[str]]
    reads: int = 0
    errors: int = 0  # 5xx and refused connections: not reads (an outage may be the fault under test)
    stale: list[str] = field(default_factory=list)
    _versions: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> StaleReader:
        self._task = asyncio.create_task(self._read_forever())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read_forever(self) -> None:
        while True:
            batch_ids = self.recent_batch_ids(SAMPLE)
            if batch_ids:
                await self._read(random.choice(batch_ids))
            await asyncio.sleep(1 / READS_PER_SECOND)

    async def _read(self, batch_id: str) -> None:
        try:
            response = await self.client.get(f"/internal/v1/batches/{batch_id}/status")
        except httpx.HTTPError:
            self.errors += 1
            return
        if response.status_code >= 500:
            self.errors += 1
            return
        self.reads += 1
        seen = self._versions.get(batch_id)
        if response.status_code == 404:
            if seen is not None:
                self.stale.append(f"{batch_id}: 404 after version {seen}")
            return
        version = int(response.headers["ETag"].strip('W/"').rsplit("-", 1)[1])
        if seen is not None and version < seen:
            self.stale.append(f"{batch_id}: version {version} after {seen}")
        self._versions[batch_id] = max(version, seen or 0)
