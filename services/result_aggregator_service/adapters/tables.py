"""The PostgreSQL read model (SQLAlchemy Core tables; Alembic migrations mirror them)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(255), primary_key=True),
    Column("is_registered", Boolean, nullable=False, server_default=text("false")),
    Column("user_id", String(255)),
    Column("org_id", String(255)),
    Column("class_id", String(255)),
    Column("course_code", String(16)),
    Column("assignment_id", String(100)),
    Column("status", String(64), nullable=False, server_default="awaiting_content_validation"),
    Column("client_status", String(64), nullable=False, server_default="pending_content"),
    Column("essay_count", Integer, nullable=False, server_default="0"),
    Column("completed_essay_count", Integer, nullable=False, server_default="0"),
    Column("failed_essay_count", Integer, nullable=False, server_default="0"),
    Column("requested_pipeline", String(64)),
    Column("current_phase", String(64)),
    Column("student_prompt_ref", JSONB),
    Column("phase_summaries", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_updated", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("processing_started_at", DateTime(timezone=True)),
    Column("processing_completed_at", DateTime(timezone=True)),
    # bumped by every committed change: ETags and change notices carry it
    Column("version", BigInteger, nullable=False, server_default="0"),
    # the batch's own facts with their stamps (its essays' facts live in their rows): what the repository loads
    Column("facts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index(
    "ix_batches_user_created",
    batches.c.user_id,
    batches.c.created_at.desc(),
    postgresql_where=batches.c.is_registered,
)

essays = Table(
    "essays",
    metadata,
    Column("batch_id", String(255), nullable=False),
    Column("essay_id", String(255), nullable=False),
    Column("filename", Text),
    Column("file_upload_id", String(255)),
    Column("text_storage_id", String(255)),
    Column("spellcheck_status", String(32)),
    Column("spellcheck_correction_count", Integer),
    Column("spellcheck_corrected_text_storage_id", String(255)),
    Column("spellcheck_metrics", JSONB),
    Column("spellcheck_error_detail", JSONB),
    Column("cj_assessment_status", String(32)),
    Column("cj_rank", Integer),
    Column("cj_score", Double),
    Column("cj_normalized_score", Double),
    Column("cj_letter_grade", String(4)),
    Column("cj_confidence_score", Double),
    Column("cj_confidence_label", String(8)),
    Column("cj_assessment_error_detail", JSONB),
    Column("last_updated", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the essay's facts with their stamps, so a change to one essay rewrites only its own row
    Column("facts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    PrimaryKeyConstraint("batch_id", "essay_id"),
    ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], ondelete="CASCADE"),
)

# The idempotency truth: one row per applied event, written in the same transaction as its effect.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("ix_processed_events_processed_at", processed_events.c.processed_at)  # retention prunes by age

# Bad input, kept with its raw bytes until an operator replays or discards it.
parked_events = Table(
    "parked_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", LargeBinary),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("reason", String(32), nullable=False),
    Column("error", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True)),
    Column("state", String(16), nullable=False, server_default="parked"),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
)
# a record redelivered after a crash is parked once; the bytes count too (a recreated topic reuses offsets)
Index(
    "uq_parked_events_record",
    parked_events.c.topic,
    parked_events.c.partition,
    parked_events.c.offset,
    func.md5(parked_events.c.value),
    unique=True,
)
Index("ix_parked_events_state", parked_events.c.state, parked_events.c.id)

# Events this service publishes (brief §6): written in the transaction that made them due, published by
# the relay in `id` order. `event_id` is stable for what the event announces, so a row made due twice is
# inserted once and a re-publish after a crash carries the same id.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("value", LargeBinary, nullable=False),
    # [[name, value], ...] as text: we write these headers ourselves, all UTF-8
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
)
# Told in the transaction that inserts outbox rows (delivered at its commit); the relay LISTENs on it.
OUTBOX_CHANNEL: Final = "ras_outbox"
# the relay's work queue: what is still unpublished, in order
Index("ix_outbox_unpublished", outbox.c.id, postgresql_where=outbox.c.published_at.is_(None))

# The live read model's epoch (one row). `ras rebuild` swaps a shadow set of the read-model tables in and
# bumps it in the same transaction; versions of the new set start at epoch * EPOCH_VERSION_BASE, so a
# version (and an ETag) never repeats across rebuilds. The retired set is dropped after a grace period.
read_model = Table(
    "read_model",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default=text("1")),
    Column("epoch", Integer, nullable=False, server_default=text("0")),
    Column("switched_at", DateTime(timezone=True)),
    Column("retired_schema", String(63)),
    Column("drop_retired_after", DateTime(timezone=True)),
    CheckConstraint("id = 1", name="ck_read_model_one_row"),
)
# The tables a rebuild replaces; parked_events and outbox stay shared (operators' and the relay's work).
READ_MODEL_TABLES = (batches, essays, processed_events)
EPOCH_VERSION_BASE = 10**12  # versions of epoch n start at n * 10**12 (well inside 2**53 for JSON readers)
