"""messages: an index by session and time, as history cursors name a message by the millisecond it was stored in

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_messages_session_id_created_at', 'messages', ['session_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_messages_session_id_created_at', table_name='messages')
