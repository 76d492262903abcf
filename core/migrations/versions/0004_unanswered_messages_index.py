"""messages: a partial index of unanswered user messages by session, so a claim costs the same however
many messages other sessions have waiting

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNANSWERED = sa.text("role = 'user' AND status IN ('pending', 'processing')")


def upgrade() -> None:
    op.create_index('ix_messages_unanswered', 'messages', ['session_id', 'seq'], unique=False,
                    postgresql_where=UNANSWERED, sqlite_where=UNANSWERED)


def downgrade() -> None:
    op.drop_index('ix_messages_unanswered', table_name='messages')
