"""Add the verdict ledger, its signed heads, and digest checks of log files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 16:55:00.000000

Verdict rows stored before this revision get ledger entries here, marked
`adopted`, in id order. The ledger proves nothing about how those rows were made,
only that they are unchanged from this upgrade on.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('image', sa.String(length=512), nullable=False),
    sa.Column('verdict_id', sa.Integer(), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ledger'))
    )
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_image'), ['image'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_verdict_id'), ['verdict_id'], unique=False)

    op.create_table('ledger_heads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('signed_at', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_heads'))
    )
    with op.batch_alter_table('log_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('validation', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('validation_detail', sa.Text(), nullable=True))

    # NOTE: this calls the store's current code, so the entries follow the ledger
    # format of the installed release, not of this revision's date.
    from sqlalchemy.orm import Session

    from imageprov.store.repository import adopt_verdict_rows

    session = Session(bind=op.get_bind())
    adopt_verdict_rows(session)
    session.flush()


def downgrade() -> None:
    with op.batch_alter_table('log_files', schema=None) as batch_op:
        batch_op.drop_column('validation_detail')
        batch_op.drop_column('validation')
        batch_op.drop_column('content_sha256')
    op.drop_table('ledger_heads')
    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_verdict_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_image'))
    op.drop_table('ledger')
