"""The worker's HTTP port: `/metrics` for Prometheus and `/healthz` for a liveness probe.

`/healthz` answers 503 when the worker is stalled: records are waiting on its partitions (lag) and it has
committed nothing for `RESULT_AGGREGATOR_WORKER_STALL_SECONDS` (the shape of Burrow's "stalled" and
Marten's async-daemon health checks). A worker that is merely idle, or busy and committing, is healthy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from result_aggregator_service.metrics import ServiceMetrics


def stall(metrics: ServiceMetrics, started_at: float, stall_seconds: float, now: float) -> dict[str, Any]:
    """The liveness verdict from the worker's own gauges: lag in records and the last commit's time."""
    registry = metrics.registry
    lag = sum(s.value for m in registry.collect() if m.name == "ras_consumer_lag" for s in m.samples)
    last_commit = registry.get_sample_value("ras_last_commit_timestamp_seconds") or 0.0
    idle_for = now - max(last_commit, started_at)
    return {"stalled": lag > 0 and idle_for > stall_seconds, "lag": lag, "seconds_since_commit": round(idle_for, 1)}


def outbox(metrics: ServiceMetrics) -> dict[str, Any]:
    """The outbox relay's state from its gauges (informative: a broker outage is not the worker's death)."""
    registry = metrics.registry
    return {
        "leader": registry.get_sample_value("ras_outbox_relay_leader") == 1.0,
        "backlog": registry.get_sample_value("ras_outbox_backlog_events"),
        "oldest_unpublished_age_seconds": registry.get_sample_value("ras_outbox_oldest_unpublished_age_seconds"),
    }


def serve(metrics: ServiceMetrics, host: str, port: int, stall_seconds: float) -> None:
    """Start the port's server in a daemon thread (like prometheus_client's own start_http_server)."""
    metrics_app, started_at = make_wsgi_app(metrics.registry), time.time()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        verdict = stall(metrics, started_at, stall_seconds, time.time())
        status = "503 Service Unavailable" if verdict["stalled"] else "200 OK"
        start_response(status, [("Content-Type", "application/json")])
        body = {"status": "stalled" if verdict["stalled"] else "ok", **verdict, "outbox_relay": outbox(metrics)}
        return [json.dumps(body).encode()]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # every scrape on stderr would drown the log
        return
