"""The worker dies or the group changes under a steady load: nothing is lost, applied twice or parked, and
no reader sees a batch go back in time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from tests.faults.bench import FaultBench
from tests.faults.profile import Profile
from tests.faults.verifier import Figures

pytestmark = pytest.mark.infra


async def test_kill_9_at_random_moments_under_load_loses_and_doubles_nothing(
    bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures]
) -> None:
    await bench.start(workers=1)
    worker = bench.workers[0]
    load = bench.run_load(profile.kill_events)
    started = bench.cleared("first start")
    while not load.done() or bench.kills < profile.min_kills:
        await bench.progress_after(started, f"start #{worker.starts}")  # up and applying
        await asyncio.sleep(random.uniform(0.0, 2.0))
        worker.kill()
        bench.kills += 1
        worker.start()
        bench.restarts += 1
        started = bench.cleared(f"kill -9 #{bench.kills}")
    figures = report(await bench.verify("kill -9 under load", load))
    figures.assert_clean()


async def test_three_workers_survive_sigterm_sigkill_and_a_newcomer_under_load(
    bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures]
) -> None:
    await bench.start(workers=3)
    stopped, killed, _ = bench.workers
    load = bench.run_load()
    quarter = profile.events // 4
    await bench.progress_after(bench.cleared("three workers started"), "the group's start")

    await bench.until_published(quarter)
    assert await stopped.terminate() == 0, f"unclean exit on SIGTERM; see {stopped.log}"
    bench.cleared("worker 1 stopped with SIGTERM")
    await bench.until_published(2 * quarter)
    killed.kill()
    bench.kills += 1
    bench.cleared("worker 2 killed with SIGKILL")
    await bench.until_published(3 * quarter)
    bench.add_worker("newcomer")
    bench.cleared("a fourth worker joined")
    stopped.start()
    bench.restarts += 1
    bench.cleared("worker 1 restarted")
    figures = report(await bench.verify("three workers: SIGTERM, SIGKILL, a newcomer", load))
    figures.assert_clean()
