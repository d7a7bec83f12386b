"""Kafka, PostgreSQL or Redis stopped and started again (with their data; Redis keeps none) in the middle of a
steady load: the worker pauses and resumes; nothing is lost, applied twice or parked; no stale read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from local_stack.cli import restart
from tests.faults.bench import FaultBench
from tests.faults.profile import Profile
from tests.faults.verifier import Figures

pytestmark = pytest.mark.infra
DOWNTIME_SECONDS = 3.0


@pytest.mark.parametrize("server", ["kafka", "postgres", "redis"])
async def test_a_server_restart_under_load_loses_nothing(
    server: str, bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures]
) -> None:
    await bench.start(workers=1)
    load = bench.run_load()
    await bench.progress_after(bench.cleared("worker started"), "the worker's start")
    for restart_number in range(1 if profile.name == "short" else 3):
        await bench.until_published((restart_number + 1) * profile.events // 4)
        await asyncio.to_thread(restart, server, DOWNTIME_SECONDS)
        bench.restarts += 1
        back = bench.cleared(f"{server} restarted ({DOWNTIME_SECONDS:.0f}s down)")
        await bench.progress_after(back, f"the {server} restart")
        bench.workers[0].assert_alive()
    figures = report(await bench.verify(f"{server} restart under load", load))
    figures.assert_clean()
