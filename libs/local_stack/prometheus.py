"""Prometheus from Debian, scraping the service's roles with `deploy/prometheus.yml` and its alert rules.

The scrape targets come from file_sd files in `.local-stack/prometheus/targets/` (`api.json`,
`worker.json`): `up` writes the default ports when a file is missing; `write_targets` (or `stack targets`)
points a role at other addresses, and Prometheus picks the change up by itself.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from local_stack import procs, state
from local_stack.state import StackError, say

NAME = "prometheus"
PORTS = ("prometheus",)
ROLES = ("api", "worker")
DEFAULT_TARGETS = {"api": "127.0.0.1:4003", "worker": "127.0.0.1:9101"}
DEPLOY_FILES = ("prometheus.yml", "alerts.yml")  # the config names the rules file beside it


def binary() -> str | None:
    return shutil.which("prometheus")


def _folder() -> Path:
    return state.state_dir() / "prometheus"


def _config() -> Path:
    return _folder() / "prometheus.yml"


def _log() -> Path:
    return _folder() / "prometheus.log"


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def write_targets(role: str, targets: Sequence[str], scrape_interval: str | None = None) -> Path:
    """Point Prometheus' job for `role` at `targets` (host:port); a `scrape_interval` such as "1s"
    overrides the config's interval for these targets (tests use it to see series sooner)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    labels = {"__scrape_interval__": scrape_interval, "__scrape_timeout__": scrape_interval} if scrape_interval else {}
    path = _folder() / "targets" / f"{role}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")  # replaced in one step: Prometheus never reads half a file
    staged.write_text(json.dumps([{"targets": list(targets), "labels": labels}], indent=2) + "\n")
    staged.replace(path)
    return path


def _render() -> bool:
    """Copy the deploy files into the state folder; True when they changed."""
    deploy = state.repo_root() / "deploy"
    changed = False
    for name in DEPLOY_FILES:
        source, copy = deploy / name, _folder() / name
        if not source.is_file():
            raise StackError(NAME, f"{source} is missing")
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
            changed = True
    for role in ROLES:
        if not (_folder() / "targets" / f"{role}.json").is_file():
            write_targets(role, [DEFAULT_TARGETS[role]])
    return changed


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"{url(port)}/-/ready", timeout=1.0) as answer:
            return int(answer.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _reload(port: int) -> None:
    request = urllib.request.Request(f"{url(port)}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10.0):
            pass
    except (OSError, urllib.error.URLError) as exc:
        raise StackError(NAME, f"reloading the changed config failed: {exc}", [_log()]) from exc


def up(ports: dict[str, int]) -> str:
    port = ports["prometheus"]
    marker = str(_config())
    _folder().mkdir(parents=True, exist_ok=True)
    changed = _render()
    pid = procs.running_pid(NAME, marker)
    if pid is not None:
        running = pid
        procs.wait_until(NAME, lambda: _ready(port), 30, lambda: procs.pid_alive(running, marker), [_log()], "/-/ready")
        if changed:
            _reload(port)
        say(NAME, f"reused (pid {pid}, {url(port)}){'; config reloaded' if changed else ''}")
        return "reused"
    procs.pid_file(NAME).unlink(missing_ok=True)
    exe = binary()
    if exe is None:
        raise StackError(NAME, "prometheus not found (Debian package: prometheus)")
    state.ensure_port_free(NAME, port)
    argv = [
        exe,
        f"--config.file={_config()}",
        f"--storage.tsdb.path={_folder() / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",  # POST /-/reload after the deploy files changed
    ]
    procs.fresh_log(_log())
    pid = procs.spawn_detached(argv, _log(), _folder())
    procs.write_pid(NAME, pid)
    started = pid
    procs.wait_until(NAME, lambda: _ready(port), 30, lambda: procs.pid_alive(started, marker), [_log()], "/-/ready")
    say(NAME, f"started (pid {pid}, {url(port)})")
    return "started"


def down() -> None:
    marker = str(_config())
    pid = procs.read_pid(NAME)
    if pid is not None and procs.pid_alive(pid, marker):
        procs.terminate(pid, marker)
        say(NAME, f"stopped (pid {pid})")
    procs.pid_file(NAME).unlink(missing_ok=True)


def status() -> tuple[bool, int | None, int | None]:
    pid = procs.running_pid(NAME, str(_config()))
    return pid is not None, pid, state.load_ports().get("prometheus")
