"""agents.updated_at: when the API or a character file last changed the agent (ElizaOS clients read it)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', core.db.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE agents SET updated_at = created_at")  # not changed since, as far as anything recorded
    with op.batch_alter_table('agents', schema=None) as batch_op:  # SQLite: rebuilds the table
        batch_op.alter_column('updated_at', existing_type=core.db.UTCDateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
