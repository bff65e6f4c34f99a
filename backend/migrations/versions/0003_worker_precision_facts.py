"""workers: the precision facts each worker reports (native bf16 or not, and why)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Nullable: a worker of an older version reports none, and the API then warns about nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('precision_facts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_column('precision_facts')
