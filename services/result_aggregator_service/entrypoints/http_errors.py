"""The API's one error taxonomy and its one JSON shape: `{"error", "message", "correlation_id"}`.

Routes raise an `ApiError` subclass; framework errors (unknown route, wrong method, a query string that
fails validation) and unexpected exceptions are turned into the same shape here, never into HTML.
"""

from __future__ import annotations

import re
from typing import ClassVar

import structlog
from pydantic import ValidationError
from quart import Quart, Response, g
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.api_models import ErrorResponse

log = structlog.get_logger(__name__)


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(ApiError):
    status, code = 400, "invalid_parameter"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class InternalError(ApiError):
    status, code = 500, "internal_error"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def error_response(status: int, code: str, message: str) -> Response:
    body = ErrorResponse(error=code, message=message, correlation_id=current_correlation_id())
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


def current_correlation_id() -> str:
    return str(getattr(g, "correlation_id", "") or "")


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def api_error(error: ApiError) -> Response:
        response = error_response(error.status, error.code, error.message)
        if isinstance(error, ServiceUnavailable):
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> Response:
        return error_response(InvalidParameter.status, InvalidParameter.code, describe_invalid(error.validation_error))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return error_response(404, NotFound.code, "no such route")
        response = error_response(status, _code_of(error), error.description or error.name)
        if status == 405:  # keep the Allow header werkzeug computed
            response.headers.update({k: v for k, v in error.get_headers() if k.lower() == "allow"})
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        if is_transient(error):  # PostgreSQL unreachable or busy: worth a retry, not a bug
            log.warning("dependency_unavailable", error_type=type(error).__name__, error=str(error))
            response = error_response(
                ServiceUnavailable.status, ServiceUnavailable.code, "the read model is unavailable"
            )
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled_error", error_type=type(error).__name__)
        return error_response(InternalError.status, InternalError.code, "an unexpected error occurred")


def describe_invalid(error: Exception) -> str:
    """One line naming each offending parameter: `limit: Input should be less than or equal to 100`."""
    if not isinstance(error, ValidationError):
        return str(error) or "invalid request"
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or 'query'}: {detail['msg']}" for detail in error.errors()
    )


def _code_of(error: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (error.name or "error").lower()).strip("_")
