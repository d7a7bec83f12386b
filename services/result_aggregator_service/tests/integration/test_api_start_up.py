"""An API server process freezes what start-up built, so that no full collection walks it again while
it serves (a full collection of a loaded API process took 99-121 ms before)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from result_aggregator_service.config import Settings

pytestmark = pytest.mark.infra

_SERVE_ONCE = """
import asyncio, gc
from result_aggregator_service.entrypoints.api import app_from_env

async def main() -> None:
    app = app_from_env()
    before = gc.get_freeze_count()
    async with app.test_app():  # start-up: the before-serving hooks run
        print("frozen:", before, gc.get_freeze_count())

asyncio.run(main())
"""


def test_a_served_api_process_freezes_its_start_up_heap(settings: Settings) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_ENVIRONMENT": "development",
        "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-c", _SERVE_ONCE]
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [counts] = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("frozen:")]
    before, after = map(int, counts)
    assert before == 0
    assert after > 10_000  # the modules, the app and its container: tens of thousands of objects
