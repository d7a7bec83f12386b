"""run.sh's one line when a role stops during the start, read from the role's log."""

from __future__ import annotations

import socket
from pathlib import Path

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.startup import cause, check_ports

SETTINGS = Settings(http_port=4100, worker_metrics_port=9200, kafka_bootstrap_servers="127.0.0.1:1")


def log_with(tmp_path: Path, *lines: str) -> Path:
    log = tmp_path / "role.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_a_bind_failure_names_the_role_port_and_its_setting(tmp_path: Path) -> None:
    log = log_with(tmp_path, "starting", "[Errno 98] error while attempting to bind: address already in use")
    message = cause(SETTINGS, "worker", 1, log)
    assert "port 9200" in message and "RESULT_AGGREGATOR_WORKER_METRICS_PORT" in message and "status 1" in message


def test_an_unreachable_broker_is_named_with_its_address(tmp_path: Path) -> None:
    log = log_with(tmp_path, "KafkaConnectionError('Unable to bootstrap from [(127.0.0.1, 1)]')")
    assert "Kafka unreachable at 127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS)" in cause(SETTINGS, "worker", None, log)


def test_anything_else_quotes_the_last_error_line_and_the_log(tmp_path: Path) -> None:
    log = log_with(tmp_path, "ValueError: first", "RuntimeError: the real one", "bye")
    message = cause(SETTINGS, "API", 3, log)
    assert "RuntimeError: the real one" in message and str(log) in message


def test_ports_are_free_unless_something_listens_or_both_roles_want_the_same_one() -> None:
    with socket.socket() as taken, socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"http_port": taken.getsockname()[1], "worker_metrics_port": spare.getsockname()[1]}
        settings = SETTINGS.model_copy(update=ports)
        assert f"port {ports['http_port']}" in str(check_ports(settings))
        assert "RESULT_AGGREGATOR_HTTP_PORT" in str(check_ports(settings))
    assert check_ports(settings) is None
    same = SETTINGS.model_copy(update={"worker_metrics_port": SETTINGS.http_port})
    assert "both set to port" in str(check_ports(same))
