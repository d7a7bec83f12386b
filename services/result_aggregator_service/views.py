"""The read side: SQLAlchemy Core selects over the read model that return the API's response models.

The worker stores everything the API shows (client status, current phase, counts) in the `batches` row,
so these queries only select. A batch is visible once registered; results that arrived before its
registration are kept in the same rows but stay hidden until then.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Column, ColumnElement, Row, Select, and_, case, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common_core.enums import BatchStatus
from result_aggregator_service.adapters.tables import batches, essays, parked_events, processed_events
from result_aggregator_service.api_models import (
    BatchStatusResponse,
    EssayDetailResponse,
    EssayResultResponse,
    Pagination,
    UserBatchesResponse,
)
from result_aggregator_service.read_service import EventOutcome

_ESSAY_PREFIX = "essay__"
_BATCH_COLUMNS: tuple[Column[Any], ...] = (
    batches.c.batch_id,
    batches.c.user_id,
    batches.c.assignment_id,
    batches.c.client_status,
    batches.c.essay_count,
    batches.c.completed_essay_count,
    batches.c.failed_essay_count,
    batches.c.requested_pipeline,
    batches.c.current_phase,
    batches.c.student_prompt_ref,
    batches.c.created_at,
    batches.c.last_updated,
    batches.c.processing_started_at,
    batches.c.processing_completed_at,
    batches.c.version,
)
_ESSAY_COLUMNS = tuple(
    essays.c[name].label(f"{_ESSAY_PREFIX}{name}") for name in EssayResultResponse.model_fields if name in essays.c
)
_ESSAY_DETAIL_COLUMNS = tuple(essays.c[name] for name in EssayDetailResponse.model_fields if name in essays.c)
_NEWEST_FIRST = (batches.c.created_at.desc(), batches.c.batch_id.desc())
# The batch's essays are those its latest registration lists (rules.derive_essays); rows of other essays
# hold facts only, e.g. results for an essay a corrected registration dropped.
_REGISTERED_ESSAY_IDS = batches.c.facts["registration"]["essay_ids"].label("registered_essay_ids")


async def batch_status(session: AsyncSession, batch_id: str) -> tuple[BatchStatusResponse, int] | None:
    """The batch with its essays and the version its ETag carries; None unless it is registered."""
    query = (
        select(*_BATCH_COLUMNS, *_ESSAY_COLUMNS)
        .outerjoin(essays, _of_registration(batches.c.batch_id, _REGISTERED_ESSAY_IDS.element))
        .where(batches.c.batch_id == batch_id, batches.c.is_registered)
        .order_by(essays.c.essay_id)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    return _batch_response(rows[0], rows), rows[0].version


async def essay(session: AsyncSession, batch_id: str, essay_id: str) -> tuple[EssayDetailResponse, int] | None:
    """One essay of a registered batch's registration and its batch's version; None otherwise."""
    query = (
        select(batches.c.version.label("batch_version"), *_ESSAY_DETAIL_COLUMNS)
        .join(essays, _of_registration(batches.c.batch_id, _REGISTERED_ESSAY_IDS.element))
        .where(batches.c.batch_id == batch_id, batches.c.is_registered, essays.c.essay_id == essay_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    fields = row._mapping
    detail = EssayDetailResponse.model_validate({column.name: fields[column.name] for column in _ESSAY_DETAIL_COLUMNS})
    return detail, row.batch_version


async def user_batches(
    session: AsyncSession, user_id: str, limit: int, offset: int, status: BatchStatus | None
) -> UserBatchesResponse:
    """One page of the user's registered batches, newest first, and how many match in all."""
    matching: list[ColumnElement[bool]] = [batches.c.user_id == user_id, batches.c.is_registered]
    if status is not None:
        matching.append(batches.c.status == status.value)
    page = (
        select(*_BATCH_COLUMNS, _REGISTERED_ESSAY_IDS, func.count().over().label("total"))
        .where(*matching)
        .order_by(*_NEWEST_FIRST)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    query: Select[Any] = (
        select(page, *_ESSAY_COLUMNS)
        .outerjoin(essays, _of_registration(page.c.batch_id, page.c.registered_essay_ids))
        .order_by(page.c.created_at.desc(), page.c.batch_id.desc(), essays.c.essay_id)
    )
    rows = (await session.execute(query)).all()
    if rows:
        total = int(rows[0].total)
    else:  # past the last page (or nothing at all): the window count has no row to ride on
        total = int((await session.execute(select(func.count()).select_from(batches).where(*matching))).scalar_one())
    return UserBatchesResponse(
        batches=[_batch_response(group[0], group) for group in _grouped_by_batch(rows)],
        pagination=Pagination(limit=limit, offset=offset, total=total),
    )


async def event_outcome(session: AsyncSession, event_id: UUID) -> EventOutcome | None:
    """Applied or parked, from the worker's own records. An event the rules rejected is claimed and
    parked; parked_events has no index on event_id, so it is searched only for a claimed event (rare)."""
    parked = exists().where(parked_events.c.event_id == event_id, parked_events.c.state == "parked")
    claimed = exists().where(processed_events.c.event_id == event_id)
    outcome = case((claimed, case((parked, literal("parked")), else_=literal("applied"))), else_=None)
    found = (await session.execute(select(outcome))).scalar_one()
    return None if found is None else "parked" if found == "parked" else "applied"


def _of_registration(batch_id: ColumnElement[str], registered_essay_ids: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(essays.c.batch_id == batch_id, registered_essay_ids.has_key(essays.c.essay_id))


def _grouped_by_batch(rows: Sequence[Row[Any]]) -> Iterable[list[Row[Any]]]:
    group: list[Row[Any]] = []
    for row in rows:
        if group and group[0].batch_id != row.batch_id:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _batch_response(batch: Row[Any], rows: Iterable[Row[Any]]) -> BatchStatusResponse:
    fields = batch._mapping
    return BatchStatusResponse(
        batch_id=fields["batch_id"],
        user_id=fields["user_id"],
        assignment_id=fields["assignment_id"],
        overall_status=fields["client_status"],
        essay_count=fields["essay_count"],
        completed_essay_count=fields["completed_essay_count"],
        failed_essay_count=fields["failed_essay_count"],
        requested_pipeline=fields["requested_pipeline"],
        current_phase=fields["current_phase"],
        essays=[_essay_response(row) for row in rows if row._mapping[f"{_ESSAY_PREFIX}essay_id"] is not None],
        created_at=fields["created_at"],
        last_updated=fields["last_updated"],
        processing_started_at=fields["processing_started_at"],
        processing_completed_at=fields["processing_completed_at"],
        student_prompt_ref=fields["student_prompt_ref"],
    )


def _essay_response(row: Row[Any]) -> EssayResultResponse:
    fields = row._mapping
    return EssayResultResponse.model_validate(
        {label.removeprefix(_ESSAY_PREFIX): fields[label] for label in fields if label.startswith(_ESSAY_PREFIX)}
    )


class SqlReadModel:
    """The `ReadModel` port over PostgreSQL: each query in a session of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def batch_status(self, batch_id: str) -> tuple[BatchStatusResponse, int] | None:
        async with self._sessions() as session:
            return await batch_status(session, batch_id)

    async def essay(self, batch_id: str, essay_id: str) -> tuple[EssayDetailResponse, int] | None:
        async with self._sessions() as session:
            return await essay(session, batch_id, essay_id)

    async def user_batches(
        self, user_id: str, limit: int, offset: int, status: BatchStatus | None
    ) -> UserBatchesResponse:
        async with self._sessions() as session:
            return await user_batches(session, user_id, limit, offset, status)

    async def event_outcome(self, event_id: UUID) -> EventOutcome | None:
        async with self._sessions() as session:
            return await event_outcome(session, event_id)
