"""Fixtures shared by every test layer: the real local stack, settings and the container.

Tests that need infrastructure ask for `stack_env` (directly or through `settings`). Without a stack it
is started; when that fails the tests fail with the stack's own error. They never skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog
from alembic import command
from dishka import AsyncContainer
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from local_stack.state import ENV_KEYS
from result_aggregator_service.adapters.schema import alembic_config, upgrade_to_head
from result_aggregator_service.config import Environment, Settings
from result_aggregator_service.providers import make_container

# structlog's default renderer draws each logged exception with rich, locals included: two seconds for a
# traceback holding a micro-batch. Tests that log without configure_logging get the services' plain one.
structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL: as set in the environment; else containers where
    a Docker engine answers; else the local stack (started or reused)."""
    from local_stack import ensure_stack
    from local_stack.containers import containers, docker_engine_available

    if all(os.environ.get(key) for key in ENV_KEYS) or not docker_engine_available():
        env = ensure_stack()
        os.environ.update(env)
        yield env
        return
    with containers() as env:
        os.environ.update(env)
        yield env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    settings = Settings(
        environment=Environment.DEVELOPMENT,
        kafka_bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
        database_url=stack_env["DATABASE_URL"],
        redis_url=stack_env["REDIS_URL"],
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
        log_format="console",
    )
    upgrade_to_head(settings.database_url)
    return settings


@pytest.fixture
async def fresh_databases(settings: Settings) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """A factory of new, empty databases on the stack's server (the role has CREATEDB), all dropped
    afterwards."""
    # no pool: a fault test may restart the server between the CREATE and the DROP
    admin = create_async_engine(settings.database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names: list[str] = []

    async def create() -> str:
        name = f"ras_test_{uuid.uuid4().hex}"
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        async with admin.connect() as connection:
            for name in names:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def fresh_database_url(fresh_databases: Callable[[], Awaitable[str]]) -> str:
    """A new, empty database on the stack's server, dropped afterwards."""
    return await fresh_databases()


async def migrate(url: str, direction: str, revision: str) -> None:
    """Alembic `upgrade`/`downgrade` from async code: migrations/env.py calls asyncio.run, which cannot nest
    in a running loop, so Alembic runs in a thread."""
    await asyncio.to_thread(getattr(command, direction), alembic_config(url), revision)


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[AsyncContainer]:
    container = make_container(settings)
    yield container
    await container.close()


# --- real-infrastructure tests: counted, and never allowed to pass by skipping -------------------

_infra_outcomes = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.infra)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "infra" not in report.keywords:
        return
    if hasattr(report, "wasxfail"):  # an expected failure of a known defect ran; it did not skip
        _infra_outcomes["xfailed" if report.skipped else "passed"] += 1
    elif report.skipped:
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
