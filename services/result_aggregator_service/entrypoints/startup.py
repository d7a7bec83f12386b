"""A truthful start for `scripts/run.sh`: the ports are checked before the roles start, the banner is
printed only once both roles answer, and a role that dies is explained in one line.

    python -m result_aggregator_service.entrypoints.startup ports
    python -m result_aggregator_service.entrypoints.startup wait WORKER_PID API_PID WORKER_LOG API_LOG
    python -m result_aggregator_service.entrypoints.startup cause ROLE STATUS LOG

Ports, host and brokers come from the one Settings object, so what is printed is what the roles use.
Exit status 0 when all is well, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import errno
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from result_aggregator_service.config import Settings

START_WITHIN_SECONDS = 120.0
_PORT_SETTINGS = {"API": "RESULT_AGGREGATOR_HTTP_PORT", "worker": "RESULT_AGGREGATOR_WORKER_METRICS_PORT"}


def role_ports(settings: Settings) -> dict[str, int]:
    return {"API": settings.http_port, "worker": settings.worker_metrics_port}


def port_in_use_message(role: str, host: str, port: int) -> str:
    what = "the API" if role == "API" else "the worker's metrics"
    return f"port {port} on {host} ({what}) is already in use: free it or set {_PORT_SETTINGS[role]} to another port"


def check_ports(settings: Settings) -> str | None:
    """None when every role can bind its port, else why not."""
    ports = role_ports(settings)
    if ports["API"] == ports["worker"]:
        settings_names = " or ".join(_PORT_SETTINGS.values())
        return f"the API and the worker's metrics are both set to port {ports['API']}: change {settings_names}"
    for role, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and prometheus-client bind
            try:
                probe.bind((settings.http_host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return port_in_use_message(role, settings.http_host, port)
                where = f"{settings.http_host}:{port}"
                return f"cannot listen on {where} ({error.strerror}): check RESULT_AGGREGATOR_HTTP_HOST"
    return None


def wait_until_up(settings: Settings, pids: dict[str, int], logs: dict[str, Path]) -> str | None:
    """None once the API's /healthz answers 200 and the worker's metrics answer and it has joined its
    consumer group (its `worker_ready` line, logged at INFO); else why not: a role that exited (with
    the cause read from its log) or what it did not do in time."""
    api = f"http://{settings.http_host}:{settings.http_port}/healthz"
    metrics = f"http://{settings.http_host}:{settings.worker_metrics_port}/metrics"
    checks: dict[str, tuple[str, Callable[[], bool]]] = {
        "API": (f"answer {api}", lambda: _answers(api)),
        "worker": (
            f"answer {metrics} and join consumer group {settings.consumer_group}",
            lambda: _answers(metrics) and _worker_ready(settings, logs["worker"]),
        ),
    }
    deadline = time.monotonic() + START_WITHIN_SECONDS
    waiting = set(checks)
    while waiting:
        for role in sorted(waiting):
            if not _alive(pids[role]):
                return cause(settings, role, None, logs[role])
            if checks[role][1]():
                waiting.discard(role)
        if waiting and time.monotonic() > deadline:
            role = sorted(waiting)[0]
            return f"the {role} did not {checks[role][0]} within {START_WITHIN_SECONDS:.0f} s (log: {logs[role]})"
        time.sleep(0.2)
    return None


def _worker_ready(settings: Settings, log: Path) -> bool:
    """The worker logged `worker_ready`; above INFO it logs no such line, and its metrics must do."""
    if settings.log_level.upper() not in {"DEBUG", "INFO"}:
        return True
    return log.exists() and "worker_ready" in log.read_text(errors="replace")


def cause(settings: Settings, role: str, status: int | None, log: Path) -> str:
    """One line on why `role` stopped, from the last lines of its log."""
    lines = log.read_text(errors="replace").splitlines()[-200:] if log.exists() else []
    text = "\n".join(lines)
    exited = f"the {role} exited" + (f" with status {status}" if status is not None else "")
    if "Address already in use" in text or "Errno 98" in text:
        return f"{exited}: " + port_in_use_message(role, settings.http_host, role_ports(settings)[role])
    if "KafkaConnectionError" in text or "Unable to bootstrap" in text:
        return f"{exited}: Kafka unreachable at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
    if "UndefinedTableError" in text or ('relation "' in text and "does not exist" in text):
        return f"{exited}: the database is not migrated (run 'pdm run migrate')"
    errors = [line for line in lines if "error" in line.lower() or "Error" in line]
    last = (errors or lines or ["(no output)"])[-1].strip()
    return f"{exited}: {last[:300]} (log: {log})"


def banner(settings: Settings, pids: dict[str, int]) -> str:
    api = f"http://{settings.http_host}:{settings.http_port}"
    metrics = f"http://{settings.http_host}:{settings.worker_metrics_port}/metrics"
    return "\n".join(
        [
            f"==> Result Aggregator running: API on port {settings.http_port} (pid {pids['API']}), worker "
            f"metrics on port {settings.worker_metrics_port} (pid {pids['worker']}), Kafka at "
            f"{settings.kafka_bootstrap_servers}. Ctrl-C stops both; 'pdm run stack down' stops the stack.",
            f"    batch status:   {api}/internal/v1/batches/{{batch_id}}/status",
            f"    user's batches: {api}/internal/v1/batches/user/{{user_id}}",
            f"    health:         {api}/healthz",
            f"    API metrics:    {api}/metrics",
            f"    worker metrics: {metrics}",
            f"    docs:           {api}/docs  (OpenAPI document: {api}/openapi.json)",
            "    sample data:    'pdm run demo' (or start with ./scripts/run.sh --demo)",
        ]
    )


def _alive(pid: int) -> bool:
    """False once `pid` has exited, also while it waits to be reaped by its parent (run.sh)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def main(argv: list[str] | None = None) -> None:
    command, *args = argv if argv is not None else sys.argv[1:]
    settings = Settings()
    if command == "ports":
        problem = check_ports(settings)
    elif command == "wait":
        worker_pid, api_pid, worker_log, api_log = args
        pids = {"worker": int(worker_pid), "API": int(api_pid)}
        try:
            problem = wait_until_up(settings, pids, {"worker": Path(worker_log), "API": Path(api_log)})
        except KeyboardInterrupt:
            sys.exit(130)
        if problem is None:
            print(banner(settings, pids), file=sys.stderr)
    elif command == "cause":
        role, status, log = args
        problem = cause(settings, role, int(status), Path(log))
    else:
        problem = f"unknown command {command!r} (ports, wait, cause)"
    if problem is not None:
        sys.exit(f"==> {problem}")


if __name__ == "__main__":
    main()
