"""jobs.gpus (processes one job runs: GPUs, or CPU processes) and workers.gpus (what a worker holds)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Both default to 1: every job so far ran as one process, and a worker of an older version holds one.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gpus', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gpus', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('gpus')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('gpus')
