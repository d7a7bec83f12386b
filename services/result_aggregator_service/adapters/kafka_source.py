"""The Kafka side of the worker: raw records in, offsets out only when the caller says so (aiokafka).

A plain consumer group member: no auto-commit, no deserializers (records stay bytes so that bad input
can be parked as it arrived), and `getmany` batching: it returns at once with whatever is buffered, up
to the cap, and waits only while nothing is (natural batching: one record at a time when idle, full
micro-batches under load). What it hands on goes in timestamp order across partitions
(adapters/record_alignment.py): a partition that holds a micro-batch's worth is paused until the others
catch up, and one call waits at most `_ALIGN_WAIT_SECONDS` for a partition that is behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, CorruptRecordException, IllegalStateError, KafkaError

from result_aggregator_service.adapters.record_alignment import AlignedRecords
from result_aggregator_service.service_layer.ports import RawRecord

_log = structlog.get_logger(__name__)
UNREADABLE = (UnicodeDecodeError, CorruptRecordException)  # the C and the Python record readers' errors
# How long one call waits for a partition that is behind before what it holds goes anyway. aiokafka
# fetches again from a broker only 0.1 s after its last buffered result (prefetch_backoff), so under a
# backlog this is reached now and then: the order is then only as good as what was fetched.
_ALIGN_WAIT_SECONDS = 0.1
_BLOCKED_POLL_MS = 10  # how long one poll waits for the partitions behind


class KafkaRecordSource:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: Sequence[str],
        on_assigned: Callable[[set[TopicPartition]], None] = lambda _: None,
        on_revoked: Callable[[set[TopicPartition]], None] = lambda _: None,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._listener = _Rebalances(self._resumed_then(on_assigned), self._forget_then(on_revoked))
        self._rebalancing = True  # from a revocation to the next assignment (and before the first one)
        self._done: dict[TopicPartition, int] = {}  # next offset to apply, per partition this member applied
        self._aligned = AlignedRecords()
        self._paused: set[TopicPartition] = set()  # paused here: holding a micro-batch's worth already

    def _resumed_then(
        self, on_assigned: Callable[[set[TopicPartition]], None]
    ) -> Callable[[set[TopicPartition]], None]:
        def resumed(assigned: set[TopicPartition]) -> None:
            self._rebalancing = False
            on_assigned(assigned)

        return resumed

    def _forget_then(self, on_revoked: Callable[[set[TopicPartition]], None]) -> Callable[[set[TopicPartition]], None]:
        def forget(revoked: set[TopicPartition]) -> None:
            self._rebalancing = True
            for tp in revoked:
                self._done.pop(tp, None)
            self._aligned.forget(revoked)
            self._paused -= revoked
            on_revoked(revoked)

        return forget

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self._topics, listener=self._listener)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def next_batch(self, max_records: int, idle_wait_seconds: float) -> list[RawRecord]:
        """What has arrived, up to `max_records`, earliest first; empty after `idle_wait_seconds` of silence."""
        clock = asyncio.get_running_loop().time
        idle_until, align_until, blocked = clock() + idle_wait_seconds, clock() + _ALIGN_WAIT_SECONDS, False
        while True:
            if blocked:
                wait_ms = _BLOCKED_POLL_MS
            else:
                wait_ms = 0 if self._aligned.holding() else max(int((idle_until - clock()) * 1000), 0)
            if (unreadable := await self._fetch(wait_ms, max_records)) is not None:
                return unreadable
            if not self._aligned.holding():
                self._resume_emptied()
                if clock() >= idle_until:
                    return []
                continue
            taken = self._aligned.take(max_records, await self._behind(), wait=clock() < align_until)
            self._pause_or_resume(max_records)
            if taken:
                return taken
            blocked = True

    async def arrived(self, max_records: int) -> list[RawRecord]:
        """What has arrived by now and may go in timestamp order, up to `max_records`, without waiting
        (possibly nothing): the records that came in while a micro-batch waited for its turn. Nothing while
        a rebalance is under way (the client would wait for the new assignment). An unreadable record
        found here rewinds like one found by `next_batch`: what it had handed on is read again, and the
        claims drop the repeats."""
        if max_records < 1 or self._rebalancing:
            return []
        if (unreadable := await self._fetch(0, max_records)) is not None:
            return unreadable
        taken = self._aligned.take(max_records, await self._behind()) if self._aligned.holding() else []
        self._resume_emptied()
        return taken

    async def _fetch(self, wait_ms: int, max_records: int) -> list[RawRecord] | None:
        """What the client has fetched joins what is held. On a record it cannot decode: the records of
        its partition up to that one, which go at once (None otherwise)."""
        try:
            fetched = await self._consumer.getmany(timeout_ms=wait_ms, max_records=max_records)
        except UNREADABLE as error:
            await self._rewind()
            return await self._read_up_to_unreadable(partition_of_unreadable(error), max_records)
        self._aligned.add(_raw_record(message) for messages in fetched.values() for message in messages)
        return None

    async def _behind(self) -> dict[TopicPartition, bool]:
        """Per assigned partition: whether the broker has records beyond those fetched, as far as the last
        fetch response told (a partition not fetched yet, just assigned, counts as behind)."""
        behind = {}
        try:  # a position still being reset, or a rebalance under way: nothing waits on anything this time
            async with asyncio.timeout(_ALIGN_WAIT_SECONDS):
                for tp in self._consumer.assignment():
                    highwater = self._consumer.highwater(tp)
                    behind[tp] = highwater is None or highwater > await self._consumer.position(tp)
        except (TimeoutError, IllegalStateError):
            return {}
        return behind

    def _pause_or_resume(self, max_records: int) -> None:
        """A partition holding a micro-batch's worth fetches no more until at most half of that is left
        (with micro-batches of one record: until none is). While two micro-batches' worth are held in
        all, a partition holding more than a quarter of a micro-batch fetches no more, and one paused
        fetches again at an eighth or less: it refills while the micro-batch in hand is applied.
        Waiting until it held nothing cut the micro-batches of a long backlog short at its last record
        (the timestamp order waits for its next fetch), to a mean of 1,350 records instead of about
        1,900. The gap between the two marks keeps a partition from being paused and resumed on every
        call (a pause drops what the client had fetched for it)."""
        self._resume_emptied()
        crowded = self._aligned.holding() >= 2 * max_records
        pause_above, resume_at = (
            (max_records // 4, max_records // 8) if crowded else (max_records - 1, max_records // 2)
        )
        held = self._aligned.held
        full = {tp for tp in self._consumer.assignment() if held(tp) > pause_above} - self._paused
        drained = {tp for tp in self._paused if held(tp) <= resume_at}
        if full:
            self._consumer.pause(*full)
        if drained:
            self._consumer.resume(*drained)
        self._paused = (self._paused | full) - drained

    def _resume_emptied(self) -> None:
        """A paused partition that holds nothing any more fetches again, whatever the others hold: they
        may wait for it (and with nothing else held, it would stay paused for good)."""
        if emptied := {tp for tp in self._paused if not self._aligned.held(tp)}:
            self._consumer.resume(*emptied)
            self._paused -= emptied

    async def _rewind(self) -> None:
        """Back to the first record not yet applied on every partition: a failed `getmany` has moved
        the positions of the partitions it drained before the failure, and their records are lost (and
        what is held is read again)."""
        self._aligned.forget(self._consumer.assignment())
        if self._paused:
            self._consumer.resume(*self._paused)
            self._paused.clear()
        never_applied = []
        for tp in self._consumer.assignment():
            if tp in self._done:
                self._consumer.seek(tp, self._done[tp])
            else:
                never_applied.append(tp)
        if never_applied:
            await self._consumer.seek_to_committed(*never_applied)

    async def _read_up_to_unreadable(self, tp: TopicPartition, max_records: int) -> list[RawRecord]:
        """The client refuses a record it cannot decode (a header key that is not UTF-8, say), and would
        refuse it forever. Read its partition one record at a time up to it; hand it on marked
        `unreadable` (to be parked by its place) and step over it."""
        records: list[RawRecord] = []
        while len(records) < max_records:
            try:
                fetched = await self._consumer.getmany(tp, timeout_ms=1000, max_records=1)
            except UNREADABLE as error:
                offset = await self._consumer.position(tp)
                _log.warning(
                    "record_unreadable", topic=tp.topic, partition=tp.partition, offset=offset, error=repr(error)
                )
                records.append(RawRecord(tp.topic, tp.partition, offset, None, b"", unreadable=repr(error)))
                self._consumer.seek(tp, offset + 1)
                break
            if not fetched:
                break
            records += [_raw_record(message) for message in fetched.get(tp, ())]
        return records

    async def commit(self, records: Sequence[RawRecord]) -> None:
        """Let these records go: the next offset of each partition still assigned to this member.

        A failed commit is not retried: the next one covers these offsets too, and a record it leaves
        behind is only redelivered, where its claim drops it.
        """
        assigned = self._consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if tp in assigned:
                offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        if not offsets:
            return
        self._done.update(offsets)
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            _log.info("offsets_not_committed_rebalanced", partitions=len(offsets))
        except KafkaError as error:
            _log.warning("offsets_not_committed", error=repr(error), partitions=len(offsets))

    async def lag(self) -> dict[TopicPartition, int]:
        """Records not yet applied per assigned partition: the broker's end offset minus the next offset
        this member will commit (asked of the broker, so it moves while consumption is paused too)."""
        assigned = self._consumer.assignment()
        if not assigned:
            return {}
        ends = await self._consumer.end_offsets(list(assigned))
        lags: dict[TopicPartition, int] = {}
        for tp, end in ends.items():
            done = self._done.get(tp)
            if done is None:
                done = await self._consumer.committed(tp)
            if done is not None:
                lags[tp] = max(end - done, 0)
        return lags


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self, on_assigned: Callable[[set[TopicPartition]], None], on_revoked: Callable[[set[TopicPartition]], None]
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._on_assigned(set(assigned))


def partition_of_unreadable(error: BaseException) -> TopicPartition:
    """The partition whose records the client failed to decode: its record reader is on the stack."""
    frame = error.__traceback__
    while frame is not None:
        partition = frame.tb_frame.f_locals.get("tp")
        if isinstance(partition, TopicPartition):
            return partition
        frame = frame.tb_next
    raise error


def _raw_record(message: Any) -> RawRecord:
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value if message.value is not None else b"",
        headers=[(key, value or b"") for key, value in message.headers or ()],
        timestamp_ms=message.timestamp,
    )
