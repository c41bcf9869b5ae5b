"""drop redundant order indexes

Two indexes only repeated the leading columns of a unique one: ix_order_deal_member
(deal_id, member_id) of uq_order_owner (deal_id, member_id, coalesce(placed_for, '')), and
ix_orderline_order_id (order_id) of the (order_id, item_id) unique constraint. Lookups use
the unique ones; every new order and order line paid for maintaining the copies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 07:35:00
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orderline', schema=None) as batch_op:
        batch_op.drop_index('ix_orderline_order_id')
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index('ix_order_deal_member')


def downgrade() -> None:
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.create_index('ix_order_deal_member', ['deal_id', 'member_id'], unique=False)
    with op.batch_alter_table('orderline', schema=None) as batch_op:
        batch_op.create_index('ix_orderline_order_id', ['order_id'], unique=False)
