"""The logger setup: console lines for a person at a terminal, JSON lines for everything else, and the Kafka client's
start-up chatter kept out of both."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import ValidationError

from huleedu_service_libs.logging import CHATTY_FRAMEWORKS, configure_logging, resolve_format
from result_aggregator_service.config import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": []}})
    for name in CHATTY_FRAMEWORKS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def logged_to(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, log_format: str | None, level: str = "INFO") -> str:
    monkeypatch.setattr("sys.stdout", stream)
    configure_logging("svc", level, log_format)
    structlog.get_logger("svc.own").info("worker_ready", partitions=3)
    logging.getLogger("uvicorn.error").info("Uvicorn running")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed")
    return stream.getvalue()


def test_without_a_configured_format_a_terminal_gets_console_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    output = logged_to(Terminal(), monkeypatch, None)
    assert "worker_ready" in output and "partitions" in output
    assert not output.lstrip().startswith("{")
    assert "\x1b[" in output, "a terminal gets colours"


def test_without_a_configured_format_anything_else_gets_one_json_object_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [json.loads(line) for line in logged_to(io.StringIO(), monkeypatch, None).splitlines()]
    assert [line["event"] for line in lines] == ["worker_ready", "Uvicorn running", "Heartbeat failed"]
    assert all({"level", "timestamp", "logger"} <= set(line) and line["service"] == "svc" for line in lines)


def test_a_configured_format_wins_over_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert logged_to(Terminal(), monkeypatch, "json").startswith("{")
    monkeypatch.setenv("NO_COLOR", "1")
    console = logged_to(io.StringIO(), monkeypatch, "console")
    assert "worker_ready" in console and not console.startswith("{") and "\x1b[" not in console


def test_the_kafka_clients_start_up_chatter_is_dropped_but_its_warnings_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    output = logged_to(io.StringIO(), monkeypatch, "json")
    assert "Joined group" not in output and "Heartbeat failed" in output


def test_at_debug_level_the_frameworks_narrate_again(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "Joined group" in logged_to(io.StringIO(), monkeypatch, "json", level="DEBUG")


def test_the_setting_takes_json_or_console_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULT_AGGREGATOR_LOG_FORMAT", "console")
    assert Settings().log_format == "console"
    monkeypatch.setenv("RESULT_AGGREGATOR_LOG_FORMAT", "pretty")
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValueError, match="json, console"):
        resolve_format("pretty", io.StringIO())
