#!/usr/bin/env bash
# Runs the service locally: installs what is missing, brings up Kafka, PostgreSQL and Redis (reused when
# running), migrates the database, then runs the worker and the API until Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  pdm run stack up
  set -a; source .local-stack/stack.env; set +a
fi
pdm run migrate
# a local run is development: without RESULT_AGGREGATOR_INTERNAL_API_KEY the API takes the development key
export RESULT_AGGREGATOR_ENVIRONMENT="${RESULT_AGGREGATOR_ENVIRONMENT:-development}"

pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait; }
trap stop EXIT INT TERM
pdm run worker & pids+=($!)
pdm run api & pids+=($!)

port="${RESULT_AGGREGATOR_HTTP_PORT:-4003}"
metrics_port="${RESULT_AGGREGATOR_WORKER_METRICS_PORT:-9101}"
cat >&2 <<MSG
==> Result Aggregator running (Ctrl-C stops the worker and the API; 'pdm run stack down' stops the stack)
    API:            http://127.0.0.1:$port/internal/v1/batches/{batch_id}/status
    health:         http://127.0.0.1:$port/healthz
    API metrics:    http://127.0.0.1:$port/metrics
    worker metrics: http://127.0.0.1:$metrics_port/metrics
    OpenAPI:        http://127.0.0.1:$port/openapi.json  (docs: /docs)
    environment:    $RESULT_AGGREGATOR_ENVIRONMENT (development: X-Internal-API-Key dev-internal-api-key unless set)
MSG
wait -n "${pids[@]}"
