#!/usr/bin/env bash
# Runs the service locally: installs what is missing, brings up Kafka, PostgreSQL and Redis (reused when
# running; with Prometheus scraping both roles), migrates the database, then runs the worker and the API
# until Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  pdm run ras stack up
  set -a; source .local-stack/stack.env; set +a
fi
pdm run ras migrate

pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM
pdm run worker & pids+=($!)
pdm run api & pids+=($!)

port="${RESULT_AGGREGATOR_HTTP_PORT:-4003}"
metrics_port="${RESULT_AGGREGATOR_WORKER_METRICS_PORT:-9101}"
prometheus_line=""
if [ -n "${PROMETHEUS_URL:-}" ]; then  # the local stack's Prometheus: scrape what runs here
  pdm run stack targets api "127.0.0.1:$port" >/dev/null
  pdm run stack targets worker "127.0.0.1:$metrics_port" >/dev/null
  prometheus_line="    Prometheus:     $PROMETHEUS_URL  (alerts: $PROMETHEUS_URL/alerts)"
fi
cat >&2 <<MSG
==> Result Aggregator running (Ctrl-C stops the worker and the API; 'pdm run ras stack down' stops the stack)
    API:            http://127.0.0.1:$port/internal/v1/batches/{batch_id}/status
    health:         http://127.0.0.1:$port/healthz
    API metrics:    http://127.0.0.1:$port/metrics
    worker metrics: http://127.0.0.1:$metrics_port/metrics
    OpenAPI:        http://127.0.0.1:$port/openapi.json  (docs: /docs)
    ops CLI:        .venv/bin/ras health | lag | parked list   (ras --help)
$prometheus_line
MSG
wait -n "${pids[@]}"
