"""scripts/run.sh as a newcomer meets it, pointed at the running stack (so it starts no other): a taken port
stops the start with one line naming it; `--demo` shows batches through the API once the banner is out."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import LOG_DIR, free_port, wait_for
from tests.kafka_groups import position_group_at_end

RUN_SH = Path(__file__).resolve().parents[1] / "scripts" / "run.sh"
WITHIN_SECONDS = 180  # installation check, then the port check; the roles never start
DEMO_HEADERS = {"X-Internal-API-Key": "dev-internal-api-key", "X-Service-ID": "bff-teacher-service"}


def run_sh_env(stack_env: dict[str, str], **settings: str) -> dict[str, str]:
    ports = {"RESULT_AGGREGATOR_HTTP_PORT": str(free_port()), "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(free_port())}
    env = {**os.environ, **stack_env, **ports, **settings}
    env.pop("RESULT_AGGREGATOR_INTERNAL_API_KEY", None)  # the demo prints the dev key
    return env


# Ctrl-C reaches every process of the terminal's foreground group with SIGINT's default action; a
# process started from a background job inherits SIGINT ignored, which a shell cannot undo: this does.
_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def start_in_own_group(argv: list[str], env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """`argv` in a process group of its own, as a terminal runs a command, its output in `output`."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize("setting", ["RESULT_AGGREGATOR_HTTP_PORT", "RESULT_AGGREGATOR_WORKER_METRICS_PORT"])
def test_a_taken_port_stops_the_start_with_one_line_naming_it(setting: str, stack_env: dict[str, str]) -> None:
    env = run_sh_env(stack_env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env[setting])))
        taken.listen()
        started = time.monotonic()
        result = subprocess.run(
            [str(RUN_SH)], env=env, capture_output=True, text=True, timeout=WITHIN_SECONDS, check=False
        )
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert f"port {env[setting]}" in last_line and setting in last_line and "in use" in last_line
    assert time.monotonic() - started < WITHIN_SECONDS
    assert "Result Aggregator running" not in result.stderr, "no banner for a start that failed"


async def test_run_sh_demo_shows_the_published_batches_through_the_api_and_stops_on_ctrl_c(
    stack_env: dict[str, str],
) -> None:
    group = f"ras-run-sh-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(stack_env["KAFKA_BOOTSTRAP_SERVERS"], group)
    env = run_sh_env(stack_env, RESULT_AGGREGATOR_CONSUMER_GROUP=group)
    output = LOG_DIR / "run-sh-demo.log"
    run = start_in_own_group([str(RUN_SH), "--demo"], env, output)
    try:

        async def demo_done() -> str | None:
            assert run.poll() is None, f"run.sh exited with {run.returncode}; see {output}"
            text = output.read_text(errors="replace")
            return text if "==> demo: sent" in text else None

        text = await wait_for(demo_done, within=240, what=f"the demo to finish (see {output})")
        assert text.index("Result Aggregator running") < text.index("==> demo: publishing")
        batch_url = re.search(r"http://\S+/internal/v1/batches/[0-9a-f-]{36}/status", text)
        assert batch_url is not None
        async with httpx.AsyncClient(headers=DEMO_HEADERS, timeout=5) as client:

            async def shown() -> bool:
                return (await client.get(batch_url.group(0))).status_code == 200

            await wait_for(shown, within=60, what="the demo's first batch in the API")
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            status = await asyncio.to_thread(run.wait, 60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)  # the group this test started
            raise
    assert status == 130
    for setting in ("RESULT_AGGREGATOR_HTTP_PORT", "RESULT_AGGREGATOR_WORKER_METRICS_PORT"):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", int(env[setting])))  # free again: both roles stopped
