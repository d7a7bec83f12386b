#!/usr/bin/env bash
# Runs the whole test suite against real Kafka, PostgreSQL and Redis (the local stack, unless
# KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL are set). Fails when a real-infrastructure test
# could not run; never skips them. A stack this command started is stopped again at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then
  if ! pdm run ras stack status >/dev/null 2>&1; then
    trap 'pdm run ras stack down' EXIT
  fi
  pdm run ras stack up
fi
pdm run lint
pdm run pytest "$@"
