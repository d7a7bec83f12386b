"""The API's one JSON error shape, `{"error", "message", "correlation_id"}`, for every 4xx and 5xx.

Routes and hooks raise werkzeug's HTTP exceptions (`NotFound("...")`, `Unauthorized("...")`,
`ServiceUnavailable("...", retry_after=...)` whose Retry-After header is kept, ...);
one handler turns any of them, a query string that fails validation, and an unexpected exception into
that shape, never into HTML. The `error` code is the status's stable name below.
"""

from __future__ import annotations

import re

import structlog
from pydantic import ValidationError
from quart import Quart, Response, g, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.api_models import ErrorResponse

log = structlog.get_logger(__name__)

ERROR_CODES = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    500: "internal_error",
    503: "service_unavailable",
}
_KEPT_HEADERS = frozenset({"allow", "retry-after"})


def error_response(status: int, message: str, code: str | None = None) -> Response:
    code = code or ERROR_CODES.get(status) or "error"
    body = ErrorResponse(error=code, message=message, correlation_id=str(getattr(g, "correlation_id", "") or ""))
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404 and request.url_rule is None:
            return error_response(404, "no such route")
        named = re.sub(r"[^a-z0-9]+", "_", (error.name or "error").lower()).strip("_")
        response = error_response(status, error.description or error.name, ERROR_CODES.get(status, named))
        # keep the headers werkzeug computed: Allow on a 405, Retry-After on a 503 that names one
        response.headers.update({k: v for k, v in error.get_headers() if k.lower() in _KEPT_HEADERS})
        return response

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> Response:
        return error_response(400, describe_invalid(error.validation_error))

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        if is_transient(error):  # PostgreSQL unreachable or busy: worth a retry, not a bug
            log.warning("dependency_unavailable", error_type=type(error).__name__, error=str(error))
            response = error_response(503, "the read model is unavailable")
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled_error", error_type=type(error).__name__)
        return error_response(500, "an unexpected error occurred")


def describe_invalid(error: Exception) -> str:
    """One line naming each offending parameter: `limit: Input should be less than or equal to 100`."""
    if not isinstance(error, ValidationError):
        return str(error) or "invalid request"
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or 'query'}: {detail['msg']}" for detail in error.errors()
    )
