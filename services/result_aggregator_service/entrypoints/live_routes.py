"""The live change feeds (Server-Sent Events): a batch's and a user's, same auth as the other routes.

Each stream holds one of the process's `live_feed_max_streams` slots (beyond: 503) until the client
goes away: Quart cancels the response on disconnect, which closes the generator and frees the slot (a
finalizer frees it too should the generator never have started).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from dishka import FromDishka
from quart import Blueprint, Response, request
from quart_dishka import inject
from quart_schema import OpenAPIProvider, document_headers, document_response, security_scheme, validate_querystring
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from result_aggregator_service.api_models import (
    BatchEvent,
    LiveFeedHeaders,
    LiveFeedQuery,
    UserBatchesQuery,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.routes import SERVICE_AUTH, documented_errors, storable
from result_aggregator_service.live_reads import (
    BatchSnapshots,
    StreamSlots,
    batch_events,
    parse_user_event_id,
    user_events,
)
from result_aggregator_service.read_service import ReadService

BATCH_EVENTS_ROUTE = "/internal/v1/batches/<batch_id>/events"
USER_EVENTS_ROUTE = "/internal/v1/batches/user/<user_id>/events"
EVENT_STREAM = "text/event-stream"

T = TypeVar("T")
live_routes = Blueprint("result_aggregator_live", __name__)


@live_routes.get(BATCH_EVENTS_ROUTE)
@security_scheme(SERVICE_AUTH)
@validate_querystring(LiveFeedQuery)
@document_headers(LiveFeedHeaders)
@document_response(BatchEvent, 200)
@documented_errors(400, 401, 403, 503)
@inject
async def batch_feed(
    batch_id: str,
    query_args: LiveFeedQuery,
    snapshots: FromDishka[BatchSnapshots],
    slots: FromDishka[StreamSlots],
    settings: FromDishka[Settings],
) -> Response:
    """A batch's changes as they are committed (Server-Sent Events).

    The current state comes at once (unless `Last-Event-ID` names its version or a newer one), then one
    event per committed version; `id:` is the version. A batch not yet registered gets its first event
    when its registration is applied. 503 when this process has `live_feed_max_streams` streams open.
    """
    batch_id = storable("batch_id", batch_id)
    last_seen = _last_event_id(lambda value: int(value) if value.isdigit() else _not_an_id())
    events = batch_events(
        snapshots, batch_id, last_seen, query_args.include == "status", settings.live_feed_heartbeat_seconds
    )
    return _stream(events, slots)


@live_routes.get(USER_EVENTS_ROUTE)
@security_scheme(SERVICE_AUTH)
@validate_querystring(LiveFeedQuery)
@document_headers(LiveFeedHeaders)
@document_response(BatchEvent, 200)
@documented_errors(400, 401, 403, 503)
@inject
async def user_feed(
    user_id: str,
    query_args: LiveFeedQuery,
    snapshots: FromDishka[BatchSnapshots],
    reads: FromDishka[ReadService],
    slots: FromDishka[StreamSlots],
    settings: FromDishka[Settings],
) -> Response:
    """Changes of any of a user's batches as they are committed (Server-Sent Events).

    At once, the current state of the user's newest `limit` batches, then one event per committed change
    of any of the user's batches; `id:` is `<batch id, percent-encoded>:<version>`. A resume
    (`Last-Event-ID`) re-sends the newest batches' state (which of them changed meanwhile is not known),
    except the batch it names unless that one moved on. 503 when this process has
    `live_feed_max_streams` streams open.
    """
    user_id = storable("user_id", user_id)
    resume = _last_event_id(parse_user_event_id)

    async def newest() -> list[str]:
        page = await reads.user_batches(user_id, UserBatchesQuery(limit=query_args.limit))
        return [batch["batch_id"] for batch in json.loads(page.body)["batches"]]

    events = user_events(
        snapshots, newest, user_id, resume, query_args.include == "status", settings.live_feed_heartbeat_seconds
    )
    return _stream(events, slots)


def _last_event_id(parse: Callable[[str], T]) -> T | None:
    value = request.headers.get("Last-Event-ID")
    if not value:
        return None
    try:
        return parse(value.strip())
    except ValueError:
        raise BadRequest("Last-Event-ID: not an id this feed sent") from None


def _not_an_id() -> int:
    raise ValueError


def _stream(events: AsyncIterator[bytes], slots: StreamSlots) -> Response:
    release = slots.take()
    if release is None:
        raise ServiceUnavailable(f"this process serves at most {slots.limit} live streams", retry_after=5)

    async def held() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield event
        finally:
            release()

    body = held()
    weakref.finalize(body, release)  # a stream cancelled before it started never runs its finally
    response = Response(body, mimetype=EVENT_STREAM, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would end a long-lived stream
    return response


class EventStreamOpenAPI(OpenAPIProvider):
    """Documents a `BatchEvent` answer as `text/event-stream` (quart-schema writes every answer as JSON)."""

    def build_response_object(self, model: Any, headers_model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        response, components = super().build_response_object(model, headers_model)
        if model is BatchEvent:
            response["content"] = {EVENT_STREAM: response["content"].pop("application/json")}
        return response, components
