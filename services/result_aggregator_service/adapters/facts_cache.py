"""The worker's memory of the batches it committed, by version, so a micro-batch reads back only the
facts of batches someone else changed since.

A batch's events arrive on six topics, so they spread over many micro-batches and each one touches
hundreds of batches: without this, every micro-batch reads and decodes their facts and essays again.
An entry is used only while its version is the one the row holds under the micro-batch's lock (every
committed change bumps it), so another worker's commit, or a restart, makes it miss, never stale.
"""

from __future__ import annotations

from collections import OrderedDict

from prometheus_client import Counter

from result_aggregator_service.domain.model import BatchResult


class FactsCache:
    def __init__(self, capacity: int, lookups: Counter | None = None, evictions: Counter | None = None) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[int, BatchResult]] = OrderedDict()
        self._lookups = {result: lookups.labels(result) for result in ("hit", "miss", "new")} if lookups else {}
        self._evictions = evictions

    def get(self, batch_id: str, version: int) -> BatchResult | None:
        entry = self._entries.get(batch_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(batch_id)
        return entry[1]

    def version_of(self, batch_id: str) -> int | None:
        entry = self._entries.get(batch_id)
        return entry[0] if entry else None

    def put(self, batch_id: str, version: int, batch: BatchResult) -> None:
        """After a commit only: the state `version` stands for (immutable, so it is shared as it is)."""
        self._entries[batch_id] = (version, batch)
        self._entries.move_to_end(batch_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
            if self._evictions:
                self._evictions.inc()

    def count(self, *, hits: int, misses: int, new: int) -> None:
        """What one load found (`ras_facts_cache_lookups_total`): a miss costs reading and decoding the
        batch and its essays, a new batch (its placeholder row) nothing."""
        for result, number in (("hit", hits), ("miss", misses), ("new", new)):
            if number and result in self._lookups:
                self._lookups[result].inc(number)
