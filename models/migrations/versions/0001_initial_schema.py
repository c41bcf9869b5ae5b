"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 00:12:44.395636
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform_id')
    )
    op.create_table('room',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform_id')
    )
    op.create_table('deal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('threshold', models.types.Quantity(), nullable=True),
    sa.Column('threshold_unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('stock', models.types.Quantity(), nullable=True),
    sa.Column('ordered', models.types.Quantity(), nullable=False),
    sa.Column('limit_per_member', models.types.Quantity(), nullable=True),
    sa.Column('deadline', models.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('reminded', sa.Boolean(), nullable=False),
    sa.Column('delivery_text', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('delivery_at', models.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('delivery_announced', sa.Boolean(), nullable=False),
    sa.Column('pickup', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', models.types.AwareDateTime(timezone=True), nullable=True),
    sa.Column('source_message_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('half_announced', sa.Boolean(), nullable=False),
    sa.Column('success_announced', sa.Boolean(), nullable=False),
    sa.Column('soldout_announced', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['leader_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deal_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deal_status'), ['status'], unique=False)

    op.create_table('leaderrole',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('room_id', 'member_id')
    )
    op.create_table('pendingquestion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('asked_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('room_id', 'member_id')
    )
    op.create_table('processedmessage',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('sender_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('received_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=True),
    sa.Column('item_no', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('processedmessage', schema=None) as batch_op:
        batch_op.create_index('ix_processed_room_sender', ['room_id', 'sender_name'], unique=False)

    op.create_table('roommember',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('room_id', 'member_id')
    )
    with op.batch_alter_table('roommember', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roommember_member_id'), ['member_id'], unique=False)

    op.create_table('item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('no', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('price', models.types.DecimalText(length=40), nullable=True),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('stock', models.types.Quantity(), nullable=True),
    sa.Column('ordered', models.types.Quantity(), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('deal_id', 'no')
    )
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_deal_id'), ['deal_id'], unique=False)

    op.create_table('order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('placed_for', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('picked_up', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.AwareDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.create_index('ix_order_deal_member', ['deal_id', 'member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_order_member_id'), ['member_id'], unique=False)

    op.create_table('jielongline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('no', sa.Integer(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('qty', models.types.Quantity(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], ),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jielongline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jielongline_deal_id'), ['deal_id'], unique=False)

    op.create_table('orderline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('qty', models.types.Quantity(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['order.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id', 'item_id')
    )
    with op.batch_alter_table('orderline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orderline_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orderline_order_id'), ['order_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('orderline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orderline_order_id'))
        batch_op.drop_index(batch_op.f('ix_orderline_item_id'))

    op.drop_table('orderline')
    with op.batch_alter_table('jielongline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jielongline_deal_id'))

    op.drop_table('jielongline')
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_member_id'))
        batch_op.drop_index('ix_order_deal_member')

    op.drop_table('order')
    with op.batch_alter_table('item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_deal_id'))

    op.drop_table('item')
    with op.batch_alter_table('roommember', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_roommember_member_id'))

    op.drop_table('roommember')
    with op.batch_alter_table('processedmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_processed_room_sender')

    op.drop_table('processedmessage')
    op.drop_table('pendingquestion')
    op.drop_table('leaderrole')
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deal_status'))
        batch_op.drop_index(batch_op.f('ix_deal_room_id'))

    op.drop_table('deal')
    op.drop_table('room')
    op.drop_table('member')
