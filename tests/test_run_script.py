"""scripts/run.sh refuses to start when a role's port is taken: non-zero exit, soon, naming the port and the
setting that changes it. It is pointed at the running stack, so it starts no other."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

RUN_SH = Path(__file__).resolve().parents[1] / "scripts" / "run.sh"
WITHIN_SECONDS = 180  # installation check, then the port check; the roles never start


@pytest.mark.parametrize("setting", ["RESULT_AGGREGATOR_HTTP_PORT", "RESULT_AGGREGATOR_WORKER_METRICS_PORT"])
def test_a_taken_port_stops_the_start_with_one_line_naming_it(setting: str, stack_env: dict[str, str]) -> None:
    ports = {"RESULT_AGGREGATOR_HTTP_PORT": free_port(), "RESULT_AGGREGATOR_WORKER_METRICS_PORT": free_port()}
    env = {**os.environ, **stack_env, **{name: str(port) for name, port in ports.items()}}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[setting]))
        taken.listen()
        started = time.monotonic()
        result = subprocess.run(
            [str(RUN_SH)], env=env, capture_output=True, text=True, timeout=WITHIN_SECONDS, check=False
        )
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert f"port {ports[setting]}" in last_line and setting in last_line and "in use" in last_line
    assert time.monotonic() - started < WITHIN_SECONDS
    assert "Result Aggregator running" not in result.stderr, "no banner for a start that failed"
