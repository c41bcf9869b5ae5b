"""The tables. Invariants are kept by the operations in ``models.ops``, not by callers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, Index, Text, UniqueConstraint, func
from sqlmodel import Field, SQLModel

from models.types import AwareDateTime, DecimalText, Quantity


class Room(SQLModel, table=True):
    """A group chat, identified by the chat platform's id; the name is as last seen."""

    id: int | None = Field(default=None, primary_key=True)
    platform_id: str = Field(unique=True, max_length=200)
    name: str = Field(max_length=200)


class Member(SQLModel, table=True):
    """A chat user, identified by the platform's id; ``name`` is the display name last seen."""

    id: int | None = Field(default=None, primary_key=True)
    platform_id: str = Field(unique=True, max_length=200)
    name: str = Field(max_length=200)


class RoomMember(SQLModel, table=True):
    """Who has been seen in which room (private status queries cover these rooms)."""

    __table_args__ = (UniqueConstraint("room_id", "member_id"),)
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id")
    member_id: int = Field(foreign_key="member.id", index=True)


class LeaderRole(SQLModel, table=True):
    """A member appointed leader of a room (beyond the owner and config.toml's leaders)."""

    __table_args__ = (UniqueConstraint("room_id", "member_id"),)
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id")
    member_id: int = Field(foreign_key="member.id")


class Deal(SQLModel, table=True):
    """A group buy; its id is the #N shown in the chat, unique across the installation."""

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id", index=True)
    leader_id: int = Field(foreign_key="member.id")
    title: str = Field(max_length=200)
    status: str = Field(default="open", max_length=16, index=True)
    threshold: Decimal | None = Field(default=None, sa_type=Quantity)
    threshold_unit: str | None = Field(default=None, max_length=16)
    stock: Decimal | None = Field(default=None, sa_type=Quantity)
    # Units ordered on active orders, all items: kept by every order change in the same
    # UPDATE that checks the stock and that the deal is still open.
    ordered: Decimal = Field(default=Decimal(0), sa_type=Quantity)
    limit_per_member: Decimal | None = Field(default=None, sa_type=Quantity)
    deadline: datetime | None = Field(default=None, sa_type=AwareDateTime)
    reminded: bool = False
    delivery_text: str | None = Field(default=None, max_length=200)
    delivery_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    delivery_announced: bool = False
    pickup: str | None = Field(default=None, max_length=200)
    cancel_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=AwareDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=AwareDateTime)
    source_message_id: str | None = Field(default=None, max_length=200)
    half_announced: bool = False
    success_announced: bool = False
    soldout_announced: bool = False


class Item(SQLModel, table=True):
    """One product of a deal, numbered 1.. within it."""

    __table_args__ = (UniqueConstraint("deal_id", "no"),)
    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", index=True)
    no: int
    name: str = Field(max_length=200)
    price: Decimal | None = Field(default=None, sa_type=DecimalText)
    unit: str | None = Field(default=None, max_length=16)
    stock: Decimal | None = Field(default=None, sa_type=Quantity)
    # Units of this item on active orders (see Deal.ordered).
    ordered: Decimal = Field(default=Decimal(0), sa_type=Quantity)


class Order(SQLModel, table=True):
    """A member's order on a deal; one per (deal, member, placed_for). (Looked up by deal
    and member through ``uq_order_owner``, below.)"""

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id")
    member_id: int = Field(foreign_key="member.id", index=True)
    placed_for: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=500)
    status: str = Field(default="active", max_length=16)
    paid: bool = False
    picked_up: bool = False
    created_at: datetime = Field(sa_type=AwareDateTime)
    updated_at: datetime = Field(sa_type=AwareDateTime)


# One order per (deal, member, placed_for), also when two workers create a member's first
# order at the same instant: the loser's transaction fails on this key and is retried.
# (placed_for is NULL for a member's own order, and NULLs never collide in a plain unique
# constraint, hence the expression.)
Index("uq_order_owner", Order.deal_id, Order.member_id,  # type: ignore[arg-type]
      func.coalesce(Order.placed_for, ""), unique=True)


class OrderLine(SQLModel, table=True):
    """Units of one item within an order; a line at 0 is kept for the record."""

    # (also the index for looking lines up by order)
    __table_args__ = (UniqueConstraint("order_id", "item_id"),)
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id")
    item_id: int = Field(foreign_key="item.id", index=True)
    qty: Decimal = Field(sa_type=Quantity)


class ProcessedMessage(SQLModel, table=True):
    """Every inbound message handled, so a redelivered message is handled once.

    ``body`` is the reply text (the quote removed), kept so a later quote-reply can be traced
    to the deal and item it answered.
    """

    __table_args__ = (Index("ix_processed_room_sender", "room_id", "sender_name"),)
    id: str = Field(primary_key=True, max_length=200)
    room_id: int | None = Field(default=None, foreign_key="room.id")
    member_id: int | None = Field(default=None, foreign_key="member.id")
    sender_name: str = Field(default="", max_length=200)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    received_at: datetime = Field(sa_type=AwareDateTime)
    deal_id: int | None = None
    item_no: int | None = None


class JielongLine(SQLModel, table=True):
    """A line of a deal's 接龙 list already counted, with who added it and what it ordered."""

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deal.id", index=True)
    no: int
    text: str = Field(max_length=500)
    author_id: int = Field(foreign_key="member.id")
    item_id: int | None = Field(default=None, foreign_key="item.id")
    qty: Decimal = Field(default=Decimal(0), sa_type=Quantity)


class PendingQuestion(SQLModel, table=True):
    """A clarification the bot asked a member; their next message may answer it."""

    __table_args__ = (UniqueConstraint("room_id", "member_id"),)
    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id")
    member_id: int = Field(foreign_key="member.id")
    asked_at: datetime = Field(sa_type=AwareDateTime)
    payload: str = Field(sa_column=Column(Text, nullable=False))


class PendingAck(SQLModel, table=True):
    """An acknowledgement waiting for its chat's coalescing window, written in the same
    transaction as the order it acknowledges: it survives a crash, and whichever worker
    claims the chat's queue sends one message for all workers' acks. A claimed row is
    deleted once its message was sent; one whose claim is older than the lease (its worker
    died before sending) is claimed again."""

    id: int | None = Field(default=None, primary_key=True)
    chat: str = Field(max_length=220, index=True)  # "room:<platform id>" or "to:<platform id>"
    queued_at: datetime = Field(sa_type=AwareDateTime)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    claimed_at: datetime | None = Field(default=None, sa_type=AwareDateTime)


class BotAccount(SQLModel, table=True):
    """A WeChat account a bot process of this installation is logged in as: when two of them
    sit in one group, each must not read the other's posts as members' orders."""

    platform_id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="", max_length=200)
