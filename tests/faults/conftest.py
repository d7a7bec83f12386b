"""Fixtures of the fault suite, and the verifier's figures printed at the end of the run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from result_aggregator_service.config import Settings
from tests.conftest import LOG_DIR
from tests.faults.bench import FaultBench
from tests.faults.profile import Profile, active_profile
from tests.faults.verifier import Figures

FIGURES_FILE = LOG_DIR.parent / "fault-figures.json"
_reported: list[Figures] = []


@pytest.fixture(scope="session")
def profile() -> Profile:
    return active_profile()


@pytest.fixture
async def bench(
    settings: Settings,
    kafka_producer: AIOKafkaProducer,
    fresh_databases: Callable[[], Awaitable[str]],
    profile: Profile,
) -> AsyncIterator[FaultBench]:
    bench = FaultBench(settings, kafka_producer, fresh_databases, profile)
    try:
        yield bench
    finally:
        await bench.close()


@pytest.fixture
def report() -> Callable[[Figures], Figures]:
    """Keep a scenario's figures for the end-of-run summary (and the JSON file next to the e2e logs)."""

    def keep(figures: Figures) -> Figures:
        _reported.append(figures)
        return figures

    return keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _reported:
        return
    terminalreporter.section("fault suite: the verifier's figures")
    for figures in _reported:
        terminalreporter.write_line(figures.summary())
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps([f.as_dict() for f in _reported], indent=2))
    terminalreporter.write_line(f"(as JSON: {FIGURES_FILE})")
