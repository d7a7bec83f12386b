"""Shared plumbing of the local stack: errors, folders, ports, the env file."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

ENV_KEYS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
PROMETHEUS_KEY = "PROMETHEUS_URL"  # written to the env file too; the service does not read it
PACKAGE_DIR = Path(__file__).resolve().parent
_print_lock = threading.Lock()


class StackError(RuntimeError):
    """A part of the stack failed; `part` names it and `logs` are worth showing."""

    def __init__(self, part: str, message: str, logs: Sequence[Path] = ()) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.logs = tuple(logs)

    def report(self, lines: int = 30) -> str:
        parts = [f"local stack: {self}"]
        for log in self.logs:
            text = tail(log, lines)
            if text:
                parts.append(f"--- last {lines} lines of {log} ---\n{text}")
        return "\n".join(parts)


def say(part: str, message: str) -> None:
    """Print one progress line (threads share stdout)."""
    with _print_lock:
        print(f"[{part}] {message}", flush=True)


def repo_root() -> Path:
    """The monorepo root when running from a checkout, else the current directory."""
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


def state_dir() -> Path:
    override = os.environ.get("LOCAL_STACK_DIR")
    path = Path(override).expanduser() if override else repo_root() / ".local-stack"
    return path.resolve()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huleedu"


def env_file() -> Path:
    return state_dir() / "stack.env"


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-200_000:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# ---------------------------------------------------------------- ports


def _ports_file() -> Path:
    return state_dir() / "ports.json"


def load_ports() -> dict[str, int]:
    try:
        raw = json.loads(_ports_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in raw.items()}


def allocate_ports(names: Sequence[str]) -> dict[str, int]:
    """Remembered ports; free ones (bind to port 0) for names seen the first time."""
    ports = load_ports()
    missing = [n for n in names if n not in ports]
    if missing:
        holders: list[socket.socket] = []
        try:
            for name in missing:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                holders.append(sock)
                ports[name] = int(sock.getsockname()[1])
        finally:
            for sock in holders:
                sock.close()
        _ports_file().parent.mkdir(parents=True, exist_ok=True)
        _ports_file().write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
    return ports


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(part: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        raise StackError(
            part,
            f"port {port} taken by another process ({exc.strerror}); stop it, "
            f"or delete {_ports_file()} to pick new ports",
        ) from exc
    finally:
        sock.close()


# ---------------------------------------------------------------- env file


def write_env_file(values: dict[str, str]) -> Path:
    path = env_file()
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def read_env_file() -> dict[str, str]:
    """The settings of the running stack (empty when `up` has not written them)."""
    try:
        text = env_file().read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values
