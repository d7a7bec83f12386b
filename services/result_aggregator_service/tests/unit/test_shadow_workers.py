"""A rebuild's shadow workers as they read their settings: the shadow schema, their own group, and no
outbox relay (the relay publishes the live outbox; a shadow worker is killed at the swap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.rebuild import ShadowWorkers


def test_a_shadow_worker_reads_the_shadow_with_its_own_group_and_runs_no_relay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    workers = ShadowWorkers(Settings(_env_file=None), "rm_shadow_1_abc123", "ras.rebuild.g", 1, tmp_path)
    for name, value in workers._env.items():  # what the shadow worker process starts with
        monkeypatch.setenv(name, value)
    seen = Settings(_env_file=None)
    assert (seen.read_model_schema, seen.consumer_group) == ("rm_shadow_1_abc123", "ras.rebuild.g")
    assert seen.outbox_relay_enabled is False
