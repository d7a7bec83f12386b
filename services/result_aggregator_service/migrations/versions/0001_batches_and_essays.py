"""batches and essays: the read model

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 23:54:17.763162
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('batch_id', sa.String(length=255), nullable=False),
    sa.Column('is_registered', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('org_id', sa.String(length=255), nullable=True),
    sa.Column('class_id', sa.String(length=255), nullable=True),
    sa.Column('course_code', sa.String(length=16), nullable=True),
    sa.Column('assignment_id', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=64), server_default='awaiting_content_validation', nullable=False),
    sa.Column('client_status', sa.String(length=64), server_default='pending_content', nullable=False),
    sa.Column('essay_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('completed_essay_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed_essay_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('requested_pipeline', sa.String(length=64), nullable=True),
    sa.Column('current_phase', sa.String(length=64), nullable=True),
    sa.Column('student_prompt_ref', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('phase_summaries', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('processing_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processing_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('facts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.PrimaryKeyConstraint('batch_id')
    )
    op.create_index('ix_batches_user_created', 'batches', ['user_id', sa.literal_column('created_at DESC')], unique=False, postgresql_where='is_registered')
    op.create_table('essays',
    sa.Column('batch_id', sa.String(length=255), nullable=False),
    sa.Column('essay_id', sa.String(length=255), nullable=False),
    sa.Column('filename', sa.Text(), nullable=True),
    sa.Column('file_upload_id', sa.String(length=255), nullable=True),
    sa.Column('text_storage_id', sa.String(length=255), nullable=True),
    sa.Column('spellcheck_status', sa.String(length=32), nullable=True),
    sa.Column('spellcheck_correction_count', sa.Integer(), nullable=True),
    sa.Column('spellcheck_corrected_text_storage_id', sa.String(length=255), nullable=True),
    sa.Column('spellcheck_metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('spellcheck_error_detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('cj_assessment_status', sa.String(length=32), nullable=True),
    sa.Column('cj_rank', sa.Integer(), nullable=True),
    sa.Column('cj_score', sa.Double(), nullable=True),
    sa.Column('cj_normalized_score', sa.Double(), nullable=True),
    sa.Column('cj_letter_grade', sa.String(length=4), nullable=True),
    sa.Column('cj_confidence_score', sa.Double(), nullable=True),
    sa.Column('cj_confidence_label', sa.String(length=8), nullable=True),
    sa.Column('cj_assessment_error_detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('last_updated', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.batch_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'essay_id')
    )


def downgrade() -> None:
    op.drop_table('essays')
    op.drop_index('ix_batches_user_created', table_name='batches', postgresql_where='is_registered')
    op.drop_table('batches')
