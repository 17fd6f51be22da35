"""Add the gate's API tokens, the evaluation time of each policy, and indexes of
images by repository and by digest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 16:55:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('sha256', name=op.f('uq_api_tokens_sha256'))
    )
    with op.batch_alter_table('policies') as batch:
        batch.add_column(sa.Column('evaluated_at', sa.DateTime(timezone=True),
                                   nullable=True))
    op.create_index('ix_images_repository', 'images', ['registry_host', 'repository'])
    op.create_index('ix_images_digest', 'images', ['digest'])


def downgrade() -> None:
    op.drop_index('ix_images_digest', table_name='images')
    op.drop_index('ix_images_repository', table_name='images')
    with op.batch_alter_table('policies') as batch:
        batch.drop_column('evaluated_at')
    op.drop_table('api_tokens')
