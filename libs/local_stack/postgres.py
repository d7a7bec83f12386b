"""PostgreSQL from Debian packages, run as the `postgres` user (the server refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

from local_stack import procs, state, system
from local_stack.state import StackError, say

NAME = "postgres"
PORTS = ("postgres",)
DB = USER = PASSWORD = "result_aggregator"
CONF = "local_stack.conf"
INITDB = ("-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
INITDB_AUTH = ("--auth-local=trust", "--auth-host=scram-sha-256")
PSQL = ("-X", "-q", "-t", "-A", "-w", "-v", "ON_ERROR_STOP=1")


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _folder() -> Path:
    return state.state_dir() / "postgres"


def _data() -> Path:
    return _folder() / "data"


def _log() -> Path:
    return _folder() / "postgres.log"


def _socket_dir(port: int) -> Path:
    run = _folder() / "run"
    # unix socket paths are limited to 107 bytes
    if len(f"{run}/.s.PGSQL.{port}") > 100:
        run = Path("/tmp") / f"huleedu-pg-{os.geteuid()}-{port}"
    return run


def url(port: int, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{USER}:{PASSWORD}@127.0.0.1:{port}/{DB}"


def _run(part_msg: str, argv: list[str], logs: list[Path]) -> str:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        out = (done.stdout + done.stderr).strip()
        raise StackError(NAME, f"{part_msg} failed (exit {done.returncode}): {out}", logs)
    return done.stdout


def _answers(bins: Path, port: int) -> bool:
    """pg_isready, then a real `select 1` as the service's user in its database."""
    isready = [str(bins / "pg_isready"), "-q", "-t", "2"]
    isready += ["-h", "127.0.0.1", "-p", str(port)]
    if subprocess.run(isready, check=False, stdin=subprocess.DEVNULL).returncode != 0:
        return False
    psql = [str(bins / "psql"), *PSQL, "-c", "select 1"]
    try:
        return _run("select 1", [*psql, url(port, "postgresql")], []).strip() == "1"
    except StackError:
        return False


def _prepare(bins: Path, port: int, user: str | None) -> None:
    folder, data, run = _folder(), _data(), _socket_dir(port)
    for path in (folder, run):
        path.mkdir(parents=True, exist_ok=True)
        system.chown(path, user)
    if user is not None:
        system.make_traversable(folder)
    if not (data / "PG_VERSION").is_file():
        shutil.rmtree(data, ignore_errors=True)
        initdb = [str(bins / "initdb"), "-D", str(data), *INITDB, *INITDB_AUTH]
        say(NAME, "initdb ...")
        try:
            _run("PostgreSQL init (initdb)", system.as_user(user, initdb), [])
        except StackError:
            shutil.rmtree(data, ignore_errors=True)
            raise
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{run}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "logging_collector": "off",
    }
    conf = data / CONF
    conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    system.chown(conf, user)
    main_conf = data / "postgresql.conf"
    if CONF not in main_conf.read_text():
        with main_conf.open("a") as fh:
            fh.write(f"\ninclude_if_exists '{CONF}'\n")
    # stale: our server is not running
    (data / "postmaster.pid").unlink(missing_ok=True)


def _bootstrap(bins: Path, port: int) -> None:
    """Create the service's role and database (owned by it) when missing."""
    su = [str(bins / "psql"), *PSQL, "-U", "postgres", "-d", "postgres"]
    su += ["-h", str(_socket_dir(port)), "-p", str(port)]
    role = (
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN "
        f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'; END IF; END$$;"
    )
    _run("creating the role", [*su, "-c", role], [_log()])
    # tests and benchmarks drop their databases WITH (FORCE), which must also end an autovacuum worker
    # there (a backend of no role): without this membership PostgreSQL refuses, now and then
    _run("letting the role end backends", [*su, "-c", f"GRANT pg_signal_backend TO {USER}"], [_log()])
    has_db = f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"
    if _run("checking the database", [*su, "-c", has_db], []).strip() != "1":
        create = f"CREATE DATABASE {DB} OWNER {USER}"
        _run("creating the database", [*su, "-c", create], [_log()])


def _wait(bins: Path, port: int, pid: int) -> None:
    alive = partial(procs.pid_alive, pid, str(_data()))
    check = partial(_answers, bins, port)
    procs.wait_until(NAME, check, 60, alive, [_log()], "select 1")


def up(ports: dict[str, int]) -> str:
    port = ports["postgres"]
    bins = bin_dir()
    if bins is None:
        raise StackError(NAME, "no PostgreSQL under /usr/lib/postgresql (Debian package: postgresql)")
    marker = str(_data())
    pid = procs.running_pid(NAME, marker)
    if pid is not None:
        _wait(bins, port, pid)
        say(NAME, f"reused (pid {pid}, port {port})")
        return "reused"
    procs.pid_file(NAME).unlink(missing_ok=True)
    state.ensure_port_free(NAME, port)
    user = system.pg_user()
    _prepare(bins, port, user)
    start = [
        str(bins / "pg_ctl"),
        "-D",
        str(_data()),
        "-l",
        str(_log()),
        "-w",
        "-t",
        "60",
    ]
    procs.fresh_log(_log())
    _run(
        "starting the server (pg_ctl start)",
        system.as_user(user, [*start, "start"]),
        [_log()],
    )
    try:
        pid = int((_data() / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise StackError(NAME, "server exited after start (no postmaster.pid)", [_log()]) from exc
    procs.write_pid(NAME, pid)
    _bootstrap(bins, port)
    _wait(bins, port, pid)
    say(NAME, f"started (pid {pid}, port {port})")
    return "started"


def down() -> None:
    marker = str(_data())
    pid = procs.read_pid(NAME)
    if pid is not None and procs.pid_alive(pid, marker):
        bins = bin_dir()
        if bins is not None:
            stop = [str(bins / "pg_ctl"), "-D", str(_data()), "-m", "fast", "-w"]
            subprocess.run(
                system.as_user(system.pg_user(), [*stop, "-t", "20", "stop"]),
                check=False,
                capture_output=True,
            )
        procs.terminate(pid, marker, timeout=5)
        say(NAME, f"stopped (pid {pid})")
    procs.pid_file(NAME).unlink(missing_ok=True)


def status() -> tuple[bool, int | None, int | None]:
    port = state.load_ports().get("postgres")
    pid = procs.running_pid(NAME, str(_data()))
    return pid is not None, pid, port
