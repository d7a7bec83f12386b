"""`ras stack status|env` over local_stack's own state, and `ras migrate` on a fresh database."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from local_stack import cli as local_stack
from local_stack import state
from result_aggregator_service.tests.integration.cli_support import json_of, one_line_error, ras


async def test_status_reports_what_local_stack_sees_and_exits_by_it() -> None:
    result = await ras("stack", "status", "--json")
    rows = local_stack.status()
    expected = [{"name": n, "running": r, "pid": pid, "port": port} for n, r, pid, port in rows]
    assert json_of(result)["servers"] == expected
    assert result.exit_code == (0 if all(running for _, running, _, _ in rows) else 1)


async def test_a_stack_that_never_ran_is_stopped_and_has_no_env(tmp_path: Path) -> None:
    elsewhere = {"LOCAL_STACK_DIR": str(tmp_path)}
    status = await ras("stack", "status", "--json", env=elsewhere)
    assert status.exit_code == 1
    servers = json_of(status)["servers"]
    assert servers and not [server for server in servers if server["running"]]
    env = await ras("stack", "env", env=elsewhere)
    assert env.exit_code == 1 and "no env file" in one_line_error(env)


async def test_env_prints_the_settings_of_the_last_up(stack_env: dict[str, str]) -> None:
    values = state.read_env_file()
    if not values:  # the stack came from the environment or containers: nothing of ours to print
        assert (await ras("stack", "env")).exit_code == 1
        return
    as_json = await ras("stack", "env", "--json")
    assert as_json.exit_code == 0 and json_of(as_json) == values
    exports = await ras("stack", "env")
    assert exports.stdout.splitlines() == [f"export {key}={value}" for key, value in values.items()]


async def test_migrate_brings_a_fresh_database_to_head(fresh_database_url: str) -> None:
    result = await ras("migrate", "--json", env={"DATABASE_URL": fresh_database_url})
    assert result.exit_code == 0, result.output
    head = json_of(result)["revision"]
    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            applied = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            tables = await connection.execute(text("SELECT to_regclass('parked_events') IS NOT NULL"))
            assert tables.scalar_one() is True
    finally:
        await engine.dispose()
    assert applied == head


async def test_migrate_against_an_unreachable_database_exits_3() -> None:
    result = await ras("migrate", env={"DATABASE_URL": "postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none"})
    assert result.exit_code == 3
    assert one_line_error(result).startswith("error: unreachable: ")


async def test_up_that_fails_names_every_part_on_one_line(tmp_path: Path) -> None:
    """Every saved port is held by another process: nothing starts, each part says why."""
    holders = [socket.socket() for _ in range(4)]
    try:
        for holder in holders:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
        ports = dict(
            zip(("kafka", "kafka_controller", "postgres", "redis"), (h.getsockname()[1] for h in holders), strict=True)
        )
        (tmp_path / "ports.json").write_text(json.dumps(ports))
        result = await ras("stack", "up", env={"LOCAL_STACK_DIR": str(tmp_path)})
    finally:
        for holder in holders:
            holder.close()
        await ras("stack", "down", env={"LOCAL_STACK_DIR": str(tmp_path)})  # a server of a later version may start
    assert result.exit_code == 1
    line = one_line_error(result)
    for part in ("kafka", "postgres", "redis"):
        assert f"{part}: port {ports[part]} taken" in line
