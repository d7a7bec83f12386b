"""Service-to-service auth for `/internal/v1/*`: a shared key (constant-time compare) and an allowlisted caller.

Missing or wrong key → 401; a valid key from a service not on the allowlist (or none named) → 403.
The key is never logged; only the caller's service id is bound into the log context.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from quart import request
from werkzeug.exceptions import Forbidden, HTTPException, Unauthorized

from result_aggregator_service.config import Settings

PROTECTED_PREFIX = "/internal/v1/"
API_KEY_HEADER = "X-Internal-API-Key"
SERVICE_ID_HEADER = "X-Service-ID"


class ServiceAuth:
    """The settings' key and allowlist; ConfigurationError without a key."""

    def __init__(self, settings: Settings) -> None:
        self._expected_key = settings.api_key().encode()
        self._allowed = frozenset(settings.allowed_service_ids)

    def refusal(self, provided_key: bytes, service_id: str) -> HTTPException | None:
        """Why a caller with these headers may not call the API (None: it may)."""
        if not provided_key:
            return Unauthorized(f"missing {API_KEY_HEADER} header")
        if not hmac.compare_digest(provided_key, self._expected_key):
            return Unauthorized(f"invalid {API_KEY_HEADER}")
        if service_id not in self._allowed:
            return Forbidden(
                f"service {service_id!r} may not call this API" if service_id else f"missing {SERVICE_ID_HEADER}"
            )
        return None


def service_auth(settings: Settings) -> Callable[[], Awaitable[None]]:
    """A `before_request` hook enforcing `ServiceAuth` on the protected routes."""
    auth = ServiceAuth(settings)

    async def check() -> None:
        if not request.path.startswith(PROTECTED_PREFIX):
            return
        headers = request.headers
        service_id = headers.get(SERVICE_ID_HEADER, "")
        if (refusal := auth.refusal(headers.get(API_KEY_HEADER, "").encode(), service_id)) is not None:
            raise refusal
        structlog.contextvars.bind_contextvars(caller_service=service_id)

    return check
