"""Stopping the service processes that tests start (worker, API), by their own handle."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_seconds`."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
