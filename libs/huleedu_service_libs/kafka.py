"""The faust app factory: raw bytes in (services decode and park themselves), fast group joins, no side topics,
and one log line when the worker is ready (its group joined and partitions assigned) and after each rebalance."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import faust
import structlog
from faust.types import TP

log = structlog.get_logger(__name__)


def create_faust_app(
    app_id: str,
    bootstrap_servers: str,
    *,
    session_timeout_seconds: float = 10.0,
    rebalance_timeout_seconds: float = 10.0,
) -> faust.App:
    """A faust app whose consumer group is `app_id`.

    Values and keys stay raw bytes so that undecodable records can be parked as they arrived. The
    leader topic, the web server and topic declaration are off: the broker's topics are created by
    their owners (or the local stack), never by this consumer.
    """
    app = faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")],
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        autodiscover=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        # Never wait for un-acked events on shutdown or rebalance: services that ack only after their
        # own commit would otherwise hang there; their idempotency makes a redelivery harmless.
        stream_wait_empty=False,
        broker_session_timeout=session_timeout_seconds,
        broker_rebalance_timeout=rebalance_timeout_seconds,
        broker_heartbeat_interval=max(session_timeout_seconds / 10, 0.5),
    )
    log_assignments(app)
    return app


def log_assignments(app: faust.App) -> None:
    """`worker_ready` once the first partitions are assigned, `partitions_reassigned` after a rebalance."""
    assignments = 0

    async def on_assigned(sender: faust.App, assigned: Set[TP], **_: Any) -> None:
        nonlocal assignments
        assignments += 1
        log.info(
            "worker_ready" if assignments == 1 else "partitions_reassigned",
            group=sender.conf.id,
            partitions=len(assigned),
            topics=len({tp.topic for tp in assigned}),
        )

    # mode types a handler's `signal` argument with an unresolvable string; the call is the documented one
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
