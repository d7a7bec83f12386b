"""One logger setup for every service: structlog, JSON lines, correlation ids from context variables."""

from __future__ import annotations

import logging.config
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer


def logging_config(service_name: str, level: str = "INFO", json: bool = True) -> dict[str, Any]:
    """A `logging.config.dictConfig` that renders the standard library's records (faust, aiokafka,
    uvicorn) and structlog's alike. Frameworks that configure logging themselves take it too."""

    def add_service(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event.setdefault("service", service_name)
        return event

    pre_chain: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    # no local variables in tracebacks: they may hold secrets and whole micro-batches
    tracebacks = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))] if json else []
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
        "root": {"level": level.upper(), "handlers": ["stdout"]},
    }


def configure_logging(service_name: str, level: str = "INFO", json: bool = True) -> dict[str, Any]:
    """Configure structlog and the standard library; returns the dictConfig for frameworks that want it.

    Bind request- or event-scoped fields with `structlog.contextvars.bound_contextvars(correlation_id=...)`.
    """
    config = logging_config(service_name, level, json)
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return config
