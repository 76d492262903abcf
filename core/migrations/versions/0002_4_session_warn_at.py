"""sessions.warn_at: when the beat warns of the current expiry, indexed so warnings cost what is due

Revision ID: 0002_4
Revises: 0001
Create Date: 2026-11-25
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0002_4'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warn_at', core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_sessions_status_warn_at', ['status', 'warn_at'], unique=False)
    # Live sessions not warned yet get their warning moment (with 60-second minutes).
    if op.get_bind().dialect.name == 'postgresql':
        moment = "expires_at - warning_threshold_minutes * interval '1 minute'"
    else:
        moment = "datetime(expires_at, '-' || warning_threshold_minutes || ' minutes')"
    op.execute(f"UPDATE sessions SET warn_at = {moment} "
               "WHERE status IN ('active', 'paused') AND warned_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_status_warn_at')
        batch_op.drop_column('warn_at')
