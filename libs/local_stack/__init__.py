"""A local Kafka + PostgreSQL + Redis + Prometheus for development and tests (no Docker needed)."""

from local_stack.cli import StackFailed, down, ensure_prometheus, ensure_stack, up
from local_stack.state import StackError, read_env_file

__all__ = ["StackError", "StackFailed", "down", "ensure_prometheus", "ensure_stack", "read_env_file", "up"]
