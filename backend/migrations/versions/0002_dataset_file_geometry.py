"""dataset files: orientation, affine, labelled-pair role and classes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

All nullable: files uploaded before this revision show no orientation and count as unlabelled.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('orientation', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('affine', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('label_role', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('pair_case', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('label_classes', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        for name in ('label_classes', 'pair_case', 'label_role', 'affine', 'orientation'):
            batch_op.drop_column(name)
