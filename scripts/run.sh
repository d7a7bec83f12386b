#!/usr/bin/env bash
# Runs the service locally: installs what is missing, brings up Kafka, PostgreSQL and Redis (reused when
# running; with Prometheus scraping both roles), migrates the database, then runs the worker and the API until Ctrl-C. The banner is printed
# once both answer; a busy port or a role that dies during the start is named in one line (exit 1).
#   ./scripts/run.sh           the service
#   ./scripts/run.sh --demo    the service, then the demo producer publishing sample batches to it
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

demo=false
for arg in "$@"; do
  case "$arg" in
    --demo) demo=true ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$arg' (known: --demo)" >&2; exit 2 ;;
  esac
done

# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
startup() { "$PY" -m result_aggregator_service.entrypoints.startup "$@"; }

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  pdm run ras stack up
  set -a; source .local-stack/stack.env; set +a
fi
startup ports
pdm run ras migrate || { echo "==> the database migrations failed (DATABASE_URL): the error is above" >&2; exit 1; }

# The roles write through tee (a log to explain a failed start; -i: their last lines survive Ctrl-C), so they
# do not see the terminal: tell them it is one.
if [ -t 1 ]; then
  export RESULT_AGGREGATOR_LOG_FORMAT="${RESULT_AGGREGATOR_LOG_FORMAT:-console}"
  [ -n "${NO_COLOR:-}" ] || export FORCE_COLOR="${FORCE_COLOR:-1}"
fi
LOGS="$ROOT/.local-stack/run-logs"
mkdir -p "$LOGS"
# a local run is development: without RESULT_AGGREGATOR_INTERNAL_API_KEY the API takes the development key
export RESULT_AGGREGATOR_ENVIRONMENT="${RESULT_AGGREGATOR_ENVIRONMENT:-development}"

pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
"$PY" -m result_aggregator_service.entrypoints.worker > >(tee -i "$LOGS/worker.log") 2>&1 &
worker_pid=$!
"$PY" -m result_aggregator_service.entrypoints.api > >(tee -i "$LOGS/api.log") 2>&1 &
api_pid=$!
pids=("$worker_pid" "$api_pid")

port="${RESULT_AGGREGATOR_HTTP_PORT:-4003}"
metrics_port="${RESULT_AGGREGATOR_WORKER_METRICS_PORT:-9101}"
if [ -n "${PROMETHEUS_URL:-}" ]; then  # the local stack's Prometheus: scrape what runs here
  pdm run ras stack targets api "127.0.0.1:$port" >/dev/null
  pdm run ras stack targets worker "127.0.0.1:$metrics_port" >/dev/null
fi
# the banner once both answer; else the cause, printed after the roles' own last lines
if ! message="$(startup wait "$worker_pid" "$api_pid" "$LOGS/worker.log" "$LOGS/api.log" 2>&1)"; then
  stop
  echo "$message" >&2
  exit 1
fi
echo "$message" >&2
echo "    environment:    $RESULT_AGGREGATOR_ENVIRONMENT (development: X-Internal-API-Key dev-internal-api-key unless set)" >&2
echo "    ops CLI:        .venv/bin/ras health | lag | parked list   (ras --help)" >&2
[ -z "${PROMETHEUS_URL:-}" ] || echo "    Prometheus:     $PROMETHEUS_URL  (alerts: $PROMETHEUS_URL/alerts)" >&2
if $demo; then
  if "$PY" -m result_aggregator_service.entrypoints.demo; then outcome="demo done"; else outcome="the demo stopped early"; fi
  echo "==> $outcome; the service keeps running until Ctrl-C" >&2
fi

status=0
wait -n "$worker_pid" "$api_pid" || status=$?
if ! kill -0 "$worker_pid" 2>/dev/null; then role=worker log="$LOGS/worker.log"; else role=API log="$LOGS/api.log"; fi
stop
startup cause "$role" "$status" "$log" || true
exit $(( status == 0 ? 1 : status ))
