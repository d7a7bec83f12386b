#!/usr/bin/env bash
# Runs the whole test suite against real Kafka, PostgreSQL and Redis (the local stack, unless
# KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL are set). Fails when a real-infrastructure test
# could not run; never skips them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"

pdm run lint
pdm run pytest "$@"
