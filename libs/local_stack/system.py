"""Operating-system helpers: Debian packages, the user PostgreSQL runs as."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from local_stack.state import StackError


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(part: str, packages: Sequence[str]) -> None:
    """Install Debian packages (root only); a clear StackError otherwise."""
    if not packages:
        return
    names = " ".join(packages)
    if not is_root() or shutil.which("apt-get") is None:
        raise StackError(part, f"missing; install the Debian package(s): {names}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"[{part}] installing {names} with apt-get ...", flush=True)
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            out = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise StackError(part, f"`{' '.join(argv)}` failed:\n{out}")


def pg_user() -> str | None:
    """The user PostgreSQL runs as: `postgres` when we are root, else None (ourselves)."""
    if not is_root():
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("postgres", "running as root but no `postgres` user exists") from exc
    return "postgres"


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    if user is None:
        return list(argv)
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return ["su", user, "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in argv)]


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def make_traversable(path: Path) -> None:
    """Let other users (postgres) pass through every ancestor of `path` (o+x, no read)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
