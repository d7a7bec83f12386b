"""Alembic from code: `ras migrate`, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema  # None: the default schema (a rebuild's shadow names its own)
    return config


def upgrade_to_head(database_url: str, schema: str | None = None) -> None:
    """Synchronous: migrations/env.py runs its own event loop (call it in a thread from async code)."""
    command.upgrade(alembic_config(database_url, schema), "head")
