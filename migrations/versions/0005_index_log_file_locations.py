"""Index log files by location, so that a trail listing skips files read before
without downloading them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 01:30:00.000000
"""

from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A hash index on PostgreSQL: a B-tree entry cannot hold a location longer
    # than about 2,700 bytes, and a local path may be longer.
    op.create_index('ix_log_files_location', 'log_files', ['location'],
                    postgresql_using='hash')


def downgrade() -> None:
    op.drop_index('ix_log_files_location', table_name='log_files')
