"""The bare baselines of bench/api_latency.py, served by uvicorn with the API's own server options (so
the comparison is route cost against route cost): `/bare` answers a constant JSON body; `/bare-redis`
answers the same body after one Redis GET of it (the floor of any cache hit that asks Redis).

    python bench/bare_api.py   # port from RESULT_AGGREGATOR_HTTP_PORT, body size from BARE_BODY_BYTES
"""

from __future__ import annotations

import os

import uvicorn
from quart import Quart, Response
from redis.asyncio import Redis

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import server_options

BARE_ROUTE = "/bare"
BARE_REDIS_ROUTE = "/bare-redis"
BARE_REDIS_KEY = "ras:bench:bare-body"


def app_from_env() -> Quart:
    size = int(os.environ.get("BARE_BODY_BYTES", "1000"))
    body = b'{"pad":"' + b"x" * max(size - 10, 0) + b'"}'
    app = Quart(__name__)
    redis = Redis.from_url(Settings().redis_url)

    @app.before_serving
    async def store_body() -> None:
        await redis.set(BARE_REDIS_KEY, body, ex=3600)

    @app.get(BARE_ROUTE)
    async def bare() -> Response:
        return Response(body, mimetype="application/json")

    @app.get(BARE_REDIS_ROUTE)
    async def bare_redis() -> Response:
        return Response(await redis.get(BARE_REDIS_KEY), mimetype="application/json")

    return app


if __name__ == "__main__":
    uvicorn.run("bare_api:app_from_env", **server_options(Settings()))
