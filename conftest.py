"""Fixtures shared by every test layer: the real local stack, settings and the container.

Tests that need infrastructure ask for `stack_env` (directly or through `settings`). Without a stack it
is started; when that fails the tests fail with the stack's own error. They never skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from dishka import AsyncContainer

from result_aggregator_service.config import Settings
from result_aggregator_service.providers import make_container

SERVICE_DIR = Path(__file__).parent / "services" / "result_aggregator_service"


def alembic_config(database_url: str) -> Config:
    config = Config(str(SERVICE_DIR / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL: as set in the environment, else the local stack."""
    from local_stack import ensure_stack

    env = ensure_stack()
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    settings = Settings(
        kafka_bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
        database_url=stack_env["DATABASE_URL"],
        redis_url=stack_env["REDIS_URL"],
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
        log_json=False,
    )
    command.upgrade(alembic_config(settings.database_url), "head")
    return settings


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[AsyncContainer]:
    container = make_container(settings)
    yield container
    await container.close()


# --- real-infrastructure tests: counted, and never allowed to pass by skipping -------------------

_infra_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.infra)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "infra" not in report.keywords:
        return
    if report.skipped:
        _infra_outcomes["skipped"] += 1
    elif report.failed:
        _infra_outcomes["failed"] += 1
    elif report.when == "call":
        _infra_outcomes["passed"] += 1


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _infra_outcomes["skipped"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = ", ".join(f"{count} {outcome}" for outcome, count in _infra_outcomes.items())
    terminalreporter.write_line(f"real-infrastructure tests (Kafka, PostgreSQL, Redis): {counts}")
    if _infra_outcomes["skipped"]:
        terminalreporter.write_line("FAILED: a real-infrastructure test was skipped; they must run", red=True)
