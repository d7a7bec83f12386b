"""Swagger UI's script and styles served by the API itself, so `/docs` renders where no public CDN can be
reached (quart-schema's defaults point at one). The files come from the swagger-ui-py package.

No auth, like `/docs` and `/openapi.json`; hidden from the OpenAPI document.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from quart import Blueprint, Quart, Response, send_from_directory
from quart_schema import hide
from werkzeug.exceptions import NotFound

ASSET_ROUTE = "/docs/assets/<name>"
SWAGGER_JS, SWAGGER_CSS = "swagger-ui-bundle.js", "swagger-ui.css"
CACHE_SECONDS = 24 * 3600

docs_assets = Blueprint("docs_assets", __name__)


def swagger_ui_dir() -> Path:
    """The static folder of the swagger-ui-py package (found without importing it: it imports web frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def serve_docs_assets(app: Quart) -> None:
    """Point quart-schema's docs page at our copies and mount the route that serves them."""
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = ASSET_ROUTE.replace("<name>", SWAGGER_JS)
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = ASSET_ROUTE.replace("<name>", SWAGGER_CSS)
    app.register_blueprint(docs_assets)


@docs_assets.get(ASSET_ROUTE)
@hide
async def docs_asset(name: str) -> Response:
    if name not in {SWAGGER_JS, SWAGGER_CSS}:
        raise NotFound(f"no docs asset {name!r}")
    return await send_from_directory(swagger_ui_dir(), name, cache_timeout=CACHE_SECONDS)
