"""The bare baseline of bench/api_latency.py: one Quart route answering a constant JSON body, served by
uvicorn with the API's own server options (so the comparison is route cost against route cost).

    python bench/bare_api.py   # port from RESULT_AGGREGATOR_HTTP_PORT, body size from BARE_BODY_BYTES
"""

from __future__ import annotations

import os

import uvicorn
from quart import Quart, Response

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import server_options

BARE_ROUTE = "/bare"


def app_from_env() -> Quart:
    size = int(os.environ.get("BARE_BODY_BYTES", "1000"))
    body = b'{"pad":"' + b"x" * max(size - 10, 0) + b'"}'
    app = Quart(__name__)

    @app.get(BARE_ROUTE)
    async def bare() -> Response:
        return Response(body, mimetype="application/json")

    return app


if __name__ == "__main__":
    uvicorn.run("bare_api:app_from_env", **server_options(Settings()))
