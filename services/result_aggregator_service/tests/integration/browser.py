"""Headless Chromium for the tests that must see a page rendered (Debian's `chromium` package, installed
here when it is missing: CI machines start without it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

RENDER_TIMEOUT_SECONDS = 90


def chromium() -> str:
    """The browser's path, installing Debian's `chromium` with apt-get when missing (as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise AssertionError("Chromium is missing: install Debian's `chromium` package (as root the tests do it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]  # other apt-get runs on the machine may hold the lock
    for command in (["apt-get", *lock, "update", "-qq"], ["apt-get", *lock, "install", "-y", "-qq", "chromium"]):
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, but it is not on PATH"
    return found


def rendered_dom(url: str, profile: Path, only_host: str = "127.0.0.1") -> str:
    """The DOM after the page's scripts ran (a virtual-time budget lets them fetch and render), with every
    host but `only_host` unresolvable: the page must not need the internet."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # root: Chromium refuses to start sandboxed
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",  # its own profile: another Chromium on the machine holds the default
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {only_host}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=RENDER_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode()
