"""The service's processes as a fault scenario drives them: workers it can kill, stop and restart, and
an API per read model. Black boxes: started with `python -m`, configured by environment only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass, field

import httpx

from result_aggregator_service.tests.processes import stop
from tests.conftest import API_HEADERS, LOG_DIR, free_port, spawn, wait_for

WORKER_MODULE = "result_aggregator_service.entrypoints.worker"
API_MODULE = "result_aggregator_service.entrypoints.api"


@dataclass
class WorkerProcess:
    name: str
    env: dict[str, str]
    starts: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.starts += 1
        env = {**self.env, "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(free_port())}
        self.process = spawn(WORKER_MODULE, env, f"fault-{self.name}-{self.starts}.log")
        return self

    @property
    def log(self) -> str:
        return str(LOG_DIR / f"fault-{self.name}-{self.starts}.log")

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def terminate(self) -> int:
        """SIGTERM, and its exit code (faust stops its agent first)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 60)

    def assert_alive(self) -> None:
        assert self.process is not None and self.process.poll() is None, f"{self.name} died; see {self.log}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process)


def worker_env(database_url: str, redis_url: str, group: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_RETRY_MAX_SECONDS": "1",
        # production's renderer: the console one renders tracebacks with locals, which can block the loop
        # for seconds and cost the worker its group membership
        "RESULT_AGGREGATOR_LOG_JSON": "true",
    }


@dataclass
class ApiProcess:
    name: str
    database_url: str
    redis_url: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ApiProcess:
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "RESULT_AGGREGATOR_HTTP_PORT": str(self.port),
            "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_HEADERS["X-Internal-API-Key"],
            "RESULT_AGGREGATOR_LOG_JSON": "false",
        }
        self.process = spawn(API_MODULE, env, f"fault-api-{self.name}.log")
        return self

    def client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=16)
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", headers=API_HEADERS, timeout=10, limits=limits
        )

    async def wait_healthy(self, client: httpx.AsyncClient) -> None:
        async def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, f"the {self.name} API exited"
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(healthy, within=60, what=f"the {self.name} API's /healthz")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
