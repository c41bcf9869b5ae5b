"""order key and ack queue

One order per (deal, member, placed_for) even under concurrent workers, the queue of
acknowledgements waiting for their chat's coalescing window, and the bot accounts of the
installation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 01:26:02.330798
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pendingack',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat', sqlmodel.sql.sqltypes.AutoString(length=220), nullable=False),
    sa.Column('queued_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('claimed_at', models.types.AwareDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pendingack', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pendingack_chat'), ['chat'], unique=False)
    op.create_table('botaccount',
    sa.Column('platform_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('platform_id')
    )
    # Autogenerate cannot see expression indexes on SQLite: written by hand.
    op.create_index('uq_order_owner', 'order',
                    [sa.text('deal_id'), sa.text('member_id'), sa.text("coalesce(placed_for, '')")],
                    unique=True)


def downgrade() -> None:
    op.drop_index('uq_order_owner', table_name='order')
    with op.batch_alter_table('pendingack', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pendingack_chat'))
    op.drop_table('pendingack')
    op.drop_table('botaccount')
