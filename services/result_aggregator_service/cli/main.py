"""The `ras` command: one sub-app or command per area, joined here.

    ras stack up|down|status|env      the local Kafka, PostgreSQL and Redis
    ras migrate                       the database schema to head
    ras parked list|summary|show|replay|discard
    ras lag                           consumer lag per partition, in records and seconds
    ras health                        the API, the worker and (--direct) the dependencies
    ras rebuild [--workers N] [--grace S]   a new read model from the topics' beginning, swapped in live
    ras demo [--rate R] [--batches N] [--duration S] [--users U]   sample lifecycles to the local Kafka

A new area is a module with its own `typer.Typer()` (or a function) added below. Every command takes
`--json` for scripts; exit codes are in `output.py`.
"""

from __future__ import annotations

import logging

import typer

from result_aggregator_service.cli import health, lag, parked, rebuild, stack
from result_aggregator_service.cli.output import JsonFlag, current_stderr, emit_json, run, stdout

app = typer.Typer(
    name="ras",
    help="Result Aggregator operations: the local stack, migrations, parked events, lag, health, rebuild.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # an unexpected error keeps its plain traceback; expected ones are one line
)
app.add_typer(stack.app, name="stack")
app.add_typer(parked.app, name="parked")
app.command()(lag.lag)
app.command()(health.health)
app.command()(rebuild.rebuild)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def demo(context: typer.Context) -> None:
    """Publish realistic batch lifecycles to Kafka (its own options: ras demo --help)."""
    from result_aggregator_service.entrypoints import demo as demo_producer

    demo_producer.main(context.args)


@app.command()
def migrate(as_json: JsonFlag = False) -> None:
    """Upgrade the database schema to the newest migration (Alembic head)."""
    from alembic.script import ScriptDirectory

    from result_aggregator_service.adapters.schema import alembic_config, upgrade_to_head
    from result_aggregator_service.config import Settings

    settings = Settings()

    async def upgrade() -> None:  # in a thread: migrations/env.py runs its own event loop
        import asyncio

        await asyncio.to_thread(upgrade_to_head, settings.database_url)

    run(upgrade())
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if as_json:
        emit_json({"revision": head})
    else:
        stdout.print(f"database schema at head: {head}", markup=False)


@app.callback()
def _logs_to_stderr() -> None:
    """Before every command: stdout carries results; logs (warnings and worse) go to stderr."""
    from huleedu_service_libs.logging import configure_logging

    configure_logging("result_aggregator_cli", "WARNING", "console")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(current_stderr)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its connection retries; failures are reported once


def main() -> None:
    """The console script."""
    app()
