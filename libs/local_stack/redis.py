"""Redis: `redis-server` from Debian, no persistence, on a remembered 127.0.0.1 port."""

from __future__ import annotations

import os
import shutil
import socket

from local_stack import procs, state
from local_stack.state import StackError, say

NAME = "redis"
PORTS = ("redis",)


MARKER = "redis-server"  # in the command line before and after redis renames its title


def binary() -> str | None:
    return shutil.which("redis-server", path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin")


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def up(ports: dict[str, int]) -> str:
    port = ports["redis"]
    folder = state.state_dir() / "redis"
    log = folder / "redis.log"
    pid = procs.running_pid(NAME, MARKER)
    if pid is not None:
        old = pid
        procs.wait_until(
            NAME,
            lambda: ping(port),
            30,
            lambda: procs.pid_alive(old, MARKER),
            [log],
            "PING",
        )
        say(NAME, f"reused (pid {pid}, port {port})")
        return "reused"
    procs.pid_file(NAME).unlink(missing_ok=True)
    exe = binary()
    if exe is None:
        raise StackError(NAME, "redis-server not found (Debian package: redis-server)")
    state.ensure_port_free(NAME, port)
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        exe,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--dir",
        str(folder),
        "--logfile",
        "",
    ]
    procs.fresh_log(log)
    pid = procs.spawn_detached(argv, log, folder)
    procs.write_pid(NAME, pid)
    new_pid = pid
    procs.wait_until(
        NAME,
        lambda: ping(port),
        30,
        lambda: procs.pid_alive(new_pid, MARKER),
        [log],
        "PING",
    )
    say(NAME, f"started (pid {pid}, port {port})")
    return "started"


def down() -> None:
    pid = procs.read_pid(NAME)
    if pid is not None and procs.pid_alive(pid, MARKER):
        procs.terminate(pid, MARKER)
        say(NAME, f"stopped (pid {pid})")
    procs.pid_file(NAME).unlink(missing_ok=True)


def status() -> tuple[bool, int | None, int | None]:
    port = state.load_ports().get("redis")
    pid = procs.running_pid(NAME, MARKER)
    return pid is not None, pid, port
