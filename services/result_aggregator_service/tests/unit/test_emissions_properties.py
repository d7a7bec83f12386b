"""Property tests of the emission rules: what is published cannot depend on the order events arrive in,
their duplicates, or where the micro-batches split them."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common_core import topics
from common_core.envelope import EventEnvelope
from result_aggregator_service.domain.emissions import (
    OutboxMessage,
    PublishedTopics,
    derive_due,
    derive_newly_due_messages,
)
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.lifecycles import batch_lifecycle, delivered
from result_aggregator_service.tests import scenarios
from result_aggregator_service.tests.published_events import assert_matches, expected_events
from result_aggregator_service.tests.unit import test_rules_properties as generators
from result_aggregator_service.tests.unit.folding import apply, decoded, fold

TOPICS = PublishedTopics(
    topics.BATCH_RESULTS_READY_TOPIC,
    topics.BATCH_ASSESSMENT_COMPLETED_TOPIC,
    topics.TEACHER_NOTIFICATION_REQUESTED_TOPIC,
)


def outbox_after(envelopes: list[EventEnvelope[Any]], batch_id: str, sizes: list[int]) -> dict[str, OutboxMessage]:
    """The outbox after folding `envelopes` in micro-batches of `sizes` (cycled), each committing its newly
    due messages; a message already there is kept as first written (ON CONFLICT DO NOTHING)."""
    outbox: dict[str, OutboxMessage] = {}
    committed, start, turn = BatchResult(batch_id), 0, 0
    while start < len(envelopes):
        size = sizes[turn % len(sizes)]
        batch = committed
        for envelope in envelopes[start : start + size]:
            batch = apply(batch, envelope)
        for message in derive_newly_due_messages(committed, batch, TOPICS):
            outbox.setdefault(str(message.event_id), message)
        committed, start, turn = batch, start + size, turn + 1
    return outbox


@generators.PROPERTY_SETTINGS
@given(data=st.data(), envelopes=generators.batch_events())
def test_any_order_with_duplicates_makes_the_same_events_due_with_the_same_content(
    data: st.DataObject, envelopes: list[EventEnvelope[Any]]
) -> None:
    shuffled = data.draw(generators.redelivered(envelopes))
    in_order, any_order = fold(envelopes, generators.B), fold(shuffled, generators.B)
    assert derive_due(any_order) == derive_due(in_order)
    assert derive_newly_due_messages(None, any_order, TOPICS) == derive_newly_due_messages(None, in_order, TOPICS)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    failure_rate=st.sampled_from([0.0, 0.4]),
    registration_last=st.booleans(),
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
)
def test_a_lifecycle_delivered_any_way_leaves_the_outbox_of_in_order_delivery(
    seed: int, failure_rate: float, registration_last: bool, sizes: list[int]
) -> None:
    """Shuffled, with duplicates, results before registration, any micro-batch split: the outbox holds
    the same rows, byte for byte, and they are the ones the brief's tables expect."""
    rng = random.Random(seed)
    life = batch_lifecycle(rng, "teacher-1", spellcheck_failure_rate=failure_rate)
    sent = delivered(life.events, rng, out_of_order=1.0, duplicated=0.3)
    if registration_last:
        sent = [e for e in sent if e is not life.events[0]] + [life.events[0]]
    in_order = outbox_after([decoded(e) for e in life.events], life.batch_id, [1])
    assert outbox_after([decoded(e) for e in sent], life.batch_id, sizes) == in_order
    expected = expected_events(life.events)
    assert in_order.keys() == expected.keys()
    for event_id, message in in_order.items():
        assert (message.topic, message.key.decode()) == (expected[event_id].topic, expected[event_id].key)
        assert_matches(message.value, expected[event_id])


def test_the_fixed_scenario_publishes_what_the_brief_expects() -> None:
    events = scenarios.lifecycle("batch-s", ["e1", "e2", "e3"], user_id="teacher-s")
    outbox = outbox_after([decoded(e) for e in reversed(events)], "batch-s", [2])
    expected = expected_events(events)
    assert outbox.keys() == expected.keys() and len(outbox) == 4
    for event_id, message in outbox.items():
        assert_matches(message.value, expected[event_id])
