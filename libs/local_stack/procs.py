"""Processes of the local stack: pid files, liveness, detached start, stop, waiting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from local_stack.state import StackError, state_dir


def pid_file(name: str) -> Path:
    return state_dir() / f"{name}.pid"


def read_pid(name: str) -> int | None:
    try:
        return int(pid_file(name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(name: str, pid: int) -> None:
    pid_file(name).write_text(f"{pid}\n")


def pid_alive(pid: int, marker: str) -> bool:
    """True when `pid` runs (not a zombie) and its command line contains `marker`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no procfs: trust kill(0)
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return False
    return marker in cmdline


def running_pid(name: str, marker: str) -> int | None:
    pid = read_pid(name)
    return pid if pid is not None and pid_alive(pid, marker) else None


def terminate(pid: int, marker: str, timeout: float = 20.0) -> None:
    """SIGTERM, wait up to `timeout` s, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not pid_alive(pid, marker):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(pid, marker):
            time.sleep(0.1)


def fresh_log(*paths: Path) -> None:
    """Keep the previous run's log as `<name>.prev`, so a failure shows this run's lines."""
    for path in paths:
        if path.exists():
            path.replace(path.with_name(path.name + ".prev"))


def run_logged(argv: Sequence[str], log: Path) -> int:
    """Run a command to completion with its output in `log`; its exit code."""
    with log.open("wb") as out:
        done = subprocess.run(
            argv,
            check=False,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return done.returncode


_LAUNCHER = (
    "import json,subprocess,sys\n"
    "a=json.loads(sys.argv[1])\n"
    "log=open(a['log'],'ab')\n"
    "p=subprocess.Popen(a['argv'],stdin=subprocess.DEVNULL,stdout=log,stderr=subprocess.STDOUT,"
    "cwd=a['cwd'],start_new_session=True)\n"
    "print(p.pid)\n"
)


def spawn_detached(argv: Sequence[str], log: Path, cwd: Path) -> int:
    """Start a server that is not our child (a short-lived launcher is), so no zombie is left
    behind in long-lived callers (pytest) and the server outlives us. Returns its pid."""
    spec = json.dumps({"argv": list(argv), "log": str(log), "cwd": str(cwd)})
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _LAUNCHER, spec],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def wait_until(
    part: str,
    check: Callable[[], bool],
    timeout: float,
    alive: Callable[[], bool],
    logs: Sequence[Path],
    what: str,
) -> None:
    deadline = time.monotonic() + timeout
    seen_dead = False
    while True:
        if check():
            return
        # dead twice in a row: a child that has not exec'd yet still shows its parent's command line
        dead = not alive()
        if dead and seen_dead:
            raise StackError(part, "server exited during start-up", logs)
        seen_dead = dead
        if time.monotonic() > deadline:
            raise StackError(part, f"{what} did not succeed within {timeout:.0f} s", logs)
        time.sleep(0.2)
