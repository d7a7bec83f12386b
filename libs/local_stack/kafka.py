"""Kafka 4.x: a single-node KRaft broker+controller run with the machine's java."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import shutil
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from local_stack import procs, state
from local_stack.jars import ensure_jars
from local_stack.state import StackError, say

NAME = "kafka"
PORTS = ("kafka", "kafka_controller")
LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def _folder() -> Path:
    return state.state_dir() / "kafka"


def _props() -> Path:
    return _folder() / "server.properties"


def _logs() -> list[Path]:
    return [_folder() / "server.log", _folder() / "stdout.log"]


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            NAME,
            "Java not found (Kafka 4.x needs Java 17+; Debian: openjdk-17-jre-headless)",
        )
    return java


def _write_config(port: int, controller: int) -> None:
    folder = _folder()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(folder / "data"),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
    }
    _props().write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    log = folder / "server.log"
    (folder / "log4j2.properties").write_text(LOG4J2.format(log=log))


def _format(java: str, libs: Path) -> None:
    if (_folder() / "data" / "meta.properties").is_file():
        return
    cluster_id = "-"  # like Kafka's Uuid.randomUuid: no leading "-" (read as an option)
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    log = _folder() / "format.log"
    argv = [
        java,
        "-XX:TieredStopAtLevel=1",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
    ]
    argv += ["format", "--standalone", "-t", cluster_id, "-c", str(_props())]
    code = procs.run_logged(argv, log)
    if code != 0:
        raise StackError(NAME, f"formatting the storage failed (exit {code})", [log])


KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


async def create_topics(bootstrap: str, topics: tuple[str, ...]) -> bool:
    admin_mod: Any = importlib.import_module("aiokafka.admin")
    admin = admin_mod.AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="local-stack", request_timeout_ms=10_000
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(
                # the full history stays: `ras rebuild` folds the topics from their beginning
                [
                    admin_mod.NewTopic(t, num_partitions=3, replication_factor=1, topic_configs=KEEP_FOREVER)
                    for t in missing
                ],
                timeout_ms=10_000,
            )
            if not set(missing) <= set(await admin.list_topics()):
                return False
            say(NAME, f"created topics: {', '.join(missing)}")
        if "__consumer_offsets" not in existing:
            # a FindCoordinator makes the broker create its offsets topic now, so the
            # first consumer group does not wait for it
            with contextlib.suppress(Exception):
                await admin.find_coordinator("local-stack")
        return True
    finally:
        await admin.close()


def _ready(port: int, topics: tuple[str, ...]) -> bool:
    """A metadata request succeeds and the service's topics exist (created when missing)."""
    if not state.port_open(port):
        return False
    try:
        return asyncio.run(create_topics(f"127.0.0.1:{port}", topics))
    except Exception:
        return False


def bootstrap_servers(port: int) -> str:
    return f"127.0.0.1:{port}"


def _wait(port: int, topics: tuple[str, ...], pid: int, timeout: float) -> None:
    alive = partial(procs.pid_alive, pid, str(_props()))
    ready = partial(_ready, port, topics)
    procs.wait_until(NAME, ready, timeout, alive, _logs(), "metadata request")


def up(ports: dict[str, int]) -> str:
    from common_core.topics import CONSUMED_TOPICS, PRODUCED_TOPICS

    topics = (*CONSUMED_TOPICS, *PRODUCED_TOPICS)  # what the service reads and what its outbox relay writes
    port, controller = ports["kafka"], ports["kafka_controller"]
    marker = str(_props())
    pid = procs.running_pid(NAME, marker)
    if pid is not None:
        _wait(port, topics, pid, 90)
        say(NAME, f"reused (pid {pid}, port {port})")
        return "reused"
    procs.pid_file(NAME).unlink(missing_ok=True)
    java = _java()
    for p in (port, controller):
        state.ensure_port_free(NAME, p)
    libs = ensure_jars()
    _write_config(port, controller)
    _format(java, libs)
    folder = _folder()
    argv = [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={folder / 'log4j2.properties'}",
    ]
    argv += [
        f"-Dkafka.logs.dir={folder}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(_props()),
    ]
    procs.fresh_log(*_logs())
    pid = procs.spawn_detached(argv, folder / "stdout.log", folder)
    procs.write_pid(NAME, pid)
    _wait(port, topics, pid, 120)
    say(NAME, f"started (pid {pid}, port {port}, controller {controller})")
    return "started"


def down() -> None:
    marker = str(_props())
    pid = procs.read_pid(NAME)
    if pid is not None and procs.pid_alive(pid, marker):
        procs.terminate(pid, marker, timeout=20)
        say(NAME, f"stopped (pid {pid})")
    procs.pid_file(NAME).unlink(missing_ok=True)


def status() -> tuple[bool, int | None, int | None]:
    pid = procs.running_pid(NAME, str(_props()))
    return pid is not None, pid, state.load_ports().get("kafka")
