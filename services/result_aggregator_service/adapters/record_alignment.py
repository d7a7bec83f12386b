"""Records of many partitions handed on in timestamp order, so that a backlog drains batch by batch.

A batch's events arrive on six topics. Read as the client fetches them (up to a megabyte per partition
at a time), the partitions of a backlog advance unevenly: one topic's partition runs thousands of
batches ahead of another's, every micro-batch touches a little of each of those batches, and the
worker writes and caches each batch many times over. Merged by timestamp instead, the events of a
batch land in one or two micro-batches.

Pure bookkeeping: the records held per partition (in offset order, which is never changed), and which
can go. A record can go when no partition could still deliver an earlier one: a partition whose held
records ran out while the broker has more (`behind`) holds back every record later than the last it
handed on, until its next records are fetched, or until the caller stops waiting for it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping

from aiokafka import TopicPartition

from result_aggregator_service.service_layer.ports import RawRecord


class AlignedRecords:
    def __init__(self) -> None:
        self._held: dict[TopicPartition, deque[RawRecord]] = {}
        self._last_sent: dict[TopicPartition, int] = {}  # the timestamp of the last record handed on

    def add(self, records: Iterable[RawRecord]) -> None:
        for record in records:
            self._held.setdefault(TopicPartition(record.topic, record.partition), deque()).append(record)

    def holding(self) -> int:
        return sum(len(records) for records in self._held.values())

    def held(self, tp: TopicPartition) -> int:
        return len(self._held.get(tp, ()))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what is held of these partitions (revoked, or about to be read again from an offset)."""
        for tp in partitions:
            self._held.pop(tp, None)
            self._last_sent.pop(tp, None)

    def take(self, max_records: int, behind: Mapping[TopicPartition, bool], *, wait: bool = True) -> list[RawRecord]:
        """Up to `max_records` held records, earliest timestamp first. `behind`: whether the broker has
        records of a partition beyond those fetched so far. With `wait=False` no partition holds back."""
        heads = [(_timestamp(q[0]), n, tp) for n, (tp, q) in enumerate(self._held.items()) if q]
        heapq.heapify(heads)
        # the latest timestamp each empty partition that is behind may still deliver before
        bounds = [self._last_sent.get(tp, -1) for tp, late in behind.items() if late and not self._held.get(tp)]
        bound = min(bounds, default=None) if wait else None
        taken: list[RawRecord] = []
        while heads and len(taken) < max_records:
            stamp, n, tp = heads[0]
            if bound is not None and stamp > bound:
                break
            queue = self._held[tp]
            taken.append(queue.popleft())
            self._last_sent[tp] = stamp
            if queue:
                heapq.heapreplace(heads, (_timestamp(queue[0]), n, tp))
                continue
            heapq.heappop(heads)
            if wait and behind.get(tp):  # ran out ahead of the broker: later records wait for its next ones
                bound = stamp if bound is None else min(bound, stamp)
        return taken


def _timestamp(record: RawRecord) -> int:
    return record.timestamp_ms if record.timestamp_ms is not None else -1
