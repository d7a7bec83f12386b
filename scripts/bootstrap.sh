#!/usr/bin/env bash
# Installs what the project needs and is missing: PDM (in its own venv, pinned: a plain `pip install pdm`
# pulls a hishel that crashes it), the locked Python dependencies, and on a Debian machine as root the
# system packages (Java 17, Maven, PostgreSQL, Redis, Prometheus). Idempotent; sourced by run.sh and test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/huleedu"
PDM_VENV="$CACHE/pdm-venv"
PDM_SPEC="pdm[locked]==2.29.3"
# UV_COMPILE_BYTECODE: every worker/API start would otherwise compile the dependencies anew where
# PYTHONDONTWRITEBYTECODE is set (about 2.4 s each here).
export PDM_USE_UV=true PDM_CHECK_UPDATE=false PDM_IGNORE_SAVED_PYTHON=1 UV_COMPILE_BYTECODE=1

say() { printf '==> %s\n' "$*" >&2; }

install_system_packages() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)  # also gives promtool (the alert-rule tests)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "missing: ${missing[*]} — install them first (see README, 'Not root?')"; return 1
  fi
  say "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_pdm() {
  if ! "$PDM_VENV/bin/pdm" --version >/dev/null 2>&1; then
    say "installing PDM into $PDM_VENV"
    python3.11 -m venv "$PDM_VENV" 2>/dev/null || python3 -m venv "$PDM_VENV"
    "$PDM_VENV/bin/pip" install -q --disable-pip-version-check "$PDM_SPEC" uv
  fi
  export PATH="$PDM_VENV/bin:$PATH"
}

install_python_deps() {
  cd "$ROOT"
  say "installing the locked Python dependencies (pdm install)"
  pdm install -G :all --frozen-lockfile -q
}

install_system_packages
install_pdm
install_python_deps
