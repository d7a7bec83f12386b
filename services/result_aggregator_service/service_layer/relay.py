"""The outbox relay's step: publish the oldest unpublished events in id order, then mark them published.

At least once: a crash between the broker's acknowledgement and the mark publishes the same rows again,
with the same event ids (consumers drop a repeated id). Only what the broker acknowledged is marked, and
only as a prefix in id order, so a row is never marked ahead of an earlier one that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from result_aggregator_service.service_layer.ports import EventPublisher, OutboxRow, OutboxStore


@dataclass(frozen=True)
class Relayed:
    published: list[OutboxRow]
    more: bool  # a full batch went out: more rows may be waiting
    error: Exception | None = None  # why the rest of the batch did not go out (it stays unpublished)


async def relay_pending(store: OutboxStore, publisher: EventPublisher, batch_size: int) -> Relayed:
    rows = await store.unpublished(batch_size)
    if not rows:
        return Relayed([], more=False)
    delivery = await publisher.publish(rows)
    published = rows[: delivery.delivered]
    if published:
        await store.mark_published([row.id for row in published])
    return Relayed(published, more=delivery.error is None and len(rows) == batch_size, error=delivery.error)
