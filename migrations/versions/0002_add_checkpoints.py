"""Add the checkpoints of incremental log sources.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 15:12:43.063732
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkpoints',
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('position', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_checkpoints'))
    )


def downgrade() -> None:
    op.drop_table('checkpoints')
