"""One logger setup for every service: structlog, correlation ids from context variables, and one format for
the standard library's records (aiokafka, uvicorn) and structlog's alike.

Two formats: `json` (one JSON object a line, for production and anything that is not a terminal) and
`console` (structlog's ConsoleRenderer, coloured on a terminal, for a person reading along). Without a
configured format the log stream decides: console on a terminal, JSON otherwise. `NO_COLOR` and
`FORCE_COLOR` (no-color.org, force-color.org) override the colour choice.
"""

from __future__ import annotations

import logging.config
import os
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
# Frameworks that narrate their start-up at INFO (aiokafka's group protocol); their
# warnings and errors still show, and the service logs one line of its own when it is ready.
CHATTY_FRAMEWORKS = ("aiokafka",)


def resolve_format(configured: str | None, stream: TextIO) -> LogFormat:
    """The configured format; without one, console when `stream` is a terminal, JSON otherwise."""
    if configured is not None:
        if configured not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {configured!r}")
        return configured
    return "console" if _is_terminal(stream) else "json"


def wants_colours(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or _is_terminal(stream)


def logging_config(
    service_name: str, level: str = "INFO", log_format: LogFormat = "json", *, colours: bool = False
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the whole process; frameworks that configure logging themselves
    (uvicorn) take it too."""

    pre_chain = _shared_processors(service_name)
    renderer: structlog.types.Processor
    tracebacks: list[structlog.types.Processor] = []
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        # no local variables in tracebacks: they may hold secrets and whole micro-batches
        tracebacks = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colours, exception_formatter=structlog.dev.plain_traceback)
    framework_level = level.upper() if level.upper() == "DEBUG" else _at_least_warning(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": pre_chain,
                "processors": [*tracebacks, structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            }
        },
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "structured", "stream": "ext://sys.stdout"}
        },
        "loggers": {name: {"level": framework_level} for name in CHATTY_FRAMEWORKS},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
    }


def configure_logging(service_name: str, level: str = "INFO", log_format: str | None = None) -> dict[str, Any]:
    """Configure structlog and the standard library; returns the dictConfig for frameworks that want it.
    `log_format`: json, console, or None to let the log stream (stdout) decide.

    Bind request- or event-scoped fields with `structlog.contextvars.bound_contextvars(correlation_id=...)`.
    """
    resolved = resolve_format(log_format, sys.stdout)
    config = logging_config(service_name, level, resolved, colours=resolved == "console" and wants_colours(sys.stdout))
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(service_name),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return config


def _shared_processors(service_name: str) -> list[structlog.types.Processor]:
    """What every line carries, whether it came from structlog or from the standard library."""

    def add_service(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("service", service_name)
        return event

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
    ]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _at_least_warning(level: str) -> str:
    number = logging.getLevelName(level.upper())
    return level.upper() if isinstance(number, int) and number > logging.WARNING else "WARNING"
