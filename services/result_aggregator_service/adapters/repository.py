"""PostgreSQL batch repository: loads aggregates under a row lock, writes them back as bulk upserts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.tables import batches, essays
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, EssayResult
from result_aggregator_service.service_layer.ports import BatchChange

_batch_facts = TypeAdapter(BatchResult)
_essay_facts = TypeAdapter(EssayResult)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SqlAlchemyBatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._loaded: dict[str, BatchResult] = {}
        self._saved: dict[str, BatchResult] = {}

    async def load(self, batch_ids: Collection[str]) -> None:
        missing = sorted(set(batch_ids) - self._loaded.keys())
        if not missing:
            return
        # A placeholder row for every batch first, so that two workers touching a batch new to both
        # serialise on its row lock instead of overwriting each other's facts. Sorted: no deadlocks.
        await self._session.execute(
            insert(batches).on_conflict_do_nothing(), [{"batch_id": batch_id} for batch_id in missing]
        )
        rows = await self._session.execute(
            select(batches.c.batch_id, batches.c.facts)
            .where(batches.c.batch_id.in_(missing))
            .order_by(batches.c.batch_id)
            .with_for_update()
        )
        essays_of: dict[str, dict[str, EssayResult]] = defaultdict(dict)
        essay_rows = await self._session.execute(
            select(essays.c.batch_id, essays.c.facts).where(essays.c.batch_id.in_(missing))
        )  # no lock needed: every writer of an essay holds its batch's row lock
        for batch_id, facts in essay_rows:
            essay = _essay_facts.validate_python(facts)
            essays_of[batch_id][essay.essay_id] = essay
        for batch_id, facts in rows:
            batch = _batch_facts.validate_python(facts) if facts else BatchResult(batch_id)
            self._loaded[batch_id] = replace(batch, essays=essays_of[batch_id])

    async def get(self, batch_id: str) -> BatchResult:
        if batch_id not in self._loaded:
            await self.load([batch_id])
        return self._saved.get(batch_id) or self._loaded[batch_id]

    def save(self, batch: BatchResult) -> None:
        self._saved[batch.batch_id] = batch

    async def current(self, batch_ids: Collection[str]) -> list[BatchChange]:
        if not batch_ids:
            return []
        rows = await self._session.execute(
            select(batches.c.batch_id, batches.c.version, batches.c.user_id).where(
                batches.c.batch_id.in_(list(batch_ids))
            )
        )
        return [BatchChange(batch_id, version, frozenset({user} if user else ())) for batch_id, version, user in rows]

    async def flush(self) -> list[BatchChange]:
        """Write every saved batch whose state changed; return the new versions."""
        changed = [batch for batch_id, batch in self._saved.items() if batch != self._loaded.get(batch_id)]
        if not changed:
            return []
        statement = insert(batches)
        upsert = statement.on_conflict_do_update(
            index_elements=[batches.c.batch_id],
            set_={
                **{column: statement.excluded[column] for column in _batch_row(changed[0]) if column != "batch_id"},
                "version": batches.c.version + 1,
            },
        ).returning(batches.c.batch_id, batches.c.version)
        versions: dict[str, int] = dict((await self._session.execute(upsert, [_batch_row(b) for b in changed])).all())
        essay_rows = [_essay_row(batch.batch_id, essay) for batch in changed for essay in self._changed_essays(batch)]
        if essay_rows:
            essay_insert = insert(essays)
            await self._session.execute(
                essay_insert.on_conflict_do_update(
                    index_elements=[essays.c.batch_id, essays.c.essay_id],
                    set_={c: essay_insert.excluded[c] for c in essay_rows[0] if c not in ("batch_id", "essay_id")},
                ),
                essay_rows,
            )
        return [BatchChange.of(batch, versions[batch.batch_id], self._loaded.get(batch.batch_id)) for batch in changed]

    def _changed_essays(self, batch: BatchResult) -> list[EssayResult]:
        before = self._loaded.get(batch.batch_id)
        known = before.essays if before is not None else {}
        return [essay for essay_id, essay in batch.essays.items() if essay != known.get(essay_id)]


def _batch_row(batch: BatchResult) -> dict[str, Any]:
    registration = batch.registration
    status = rules.derive_status(batch)
    completed, failed = rules.derive_essay_counts(batch)
    current_phase = rules.derive_current_phase(batch)
    return {
        "batch_id": batch.batch_id,
        "is_registered": registration is not None,
        "user_id": registration.user_id if registration else None,
        "org_id": registration.org_id if registration else None,
        "class_id": registration.class_id if registration else None,
        "course_code": registration.course_code.value if registration else None,
        "assignment_id": batch.assignment.assignment_id if batch.assignment else None,
        "status": status.value,
        "client_status": rules.derive_client_status(status).value,
        "essay_count": rules.derive_essay_count(batch),
        "completed_essay_count": completed,
        "failed_essay_count": failed,
        "current_phase": current_phase.value if current_phase else None,
        "student_prompt_ref": registration.student_prompt_ref if registration else None,
        "phase_summaries": {
            phase.value: {
                "phase_status": summary.phase_status.value,
                "processed_count": summary.processed_count,
                "failed_count": summary.failed_count,
                "reported_at": summary.stamp.at.isoformat(),
            }
            for phase, summary in batch.phases.items()
        },
        "created_at": registration.stamp.at if registration else (batch.last_updated or _EPOCH),
        "last_updated": batch.last_updated or _EPOCH,
        "processing_started_at": batch.processing_started_at,
        "processing_completed_at": rules.derive_processing_completed_at(batch),
        "facts": _batch_facts.dump_python(batch, mode="json", exclude={"essays"}),
    }


def _essay_row(batch_id: str, essay: EssayResult) -> dict[str, Any]:
    slot, spell, spell_progress, cj, cj_progress = (
        essay.slot,
        essay.spellcheck,
        essay.spellcheck_progress,
        essay.cj,
        essay.cj_progress,
    )
    return {
        "batch_id": batch_id,
        "essay_id": essay.essay_id,
        "filename": slot.original_file_name if slot else None,
        "file_upload_id": slot.file_upload_id if slot else None,
        "text_storage_id": slot.text_storage_id if slot else None,
        "spellcheck_status": spell_progress.stage.value if spell_progress else None,
        "spellcheck_correction_count": spell.correction_count if spell else None,
        "spellcheck_corrected_text_storage_id": spell.corrected_text_storage_id if spell else None,
        "spellcheck_metrics": spell.metrics if spell else None,
        "spellcheck_error_detail": spell_progress.error_detail if spell_progress else None,
        "cj_assessment_status": cj_progress.stage.value if cj_progress else None,
        "cj_rank": cj.rank if cj else None,
        "cj_score": cj.bt_score if cj else None,
        "cj_normalized_score": cj.normalized_score if cj else None,
        "cj_letter_grade": cj.letter_grade if cj else None,
        "cj_confidence_score": cj.confidence_score if cj else None,
        "cj_confidence_label": cj.confidence_label.value if cj else None,
        "cj_assessment_error_detail": cj_progress.error_detail if cj_progress else None,
        "last_updated": essay.last_updated or _EPOCH,
        "facts": _essay_facts.dump_python(essay, mode="json"),
    }
