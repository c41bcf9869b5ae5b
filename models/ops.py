"""Domain operations. Each runs inside the caller's transaction and keeps its invariants:
an order stays within the per-member limit and the stock, a deal closes exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from models.tables import (
    Deal,
    Item,
    LeaderRole,
    Member,
    Order,
    OrderLine,
    Room,
    RoomMember,
)

ZERO = Decimal(0)
Mode = Literal["add", "set", "sub"]


# --- rooms, members, roles ------------------------------------------------------------------

def upsert_room(session: Session, platform_id: str, name: str) -> Room:
    """Return the room with this platform id, creating it or refreshing its name."""
    room = session.exec(select(Room).where(Room.platform_id == platform_id)).first()
    if room is None:
        room = Room(platform_id=platform_id, name=name)
        session.add(room)
        session.flush()
    elif name and room.name != name:
        room.name = name
    return room


def upsert_member(session: Session, platform_id: str, name: str) -> Member:
    """Return the member with this platform id, creating it or refreshing the display name."""
    member = session.exec(select(Member).where(Member.platform_id == platform_id)).first()
    if member is None:
        member = Member(platform_id=platform_id, name=name)
        session.add(member)
        session.flush()
    elif name and member.name != name:
        member.name = name
    return member


def note_presence(session: Session, room: Room, member: Member) -> None:
    """Remember that the member is in the room."""
    exists = session.exec(select(RoomMember.id).where(
        RoomMember.room_id == room.id, RoomMember.member_id == member.id)).first()
    if exists is None:
        session.add(RoomMember(room_id=room.id or 0, member_id=member.id or 0))


def member_rooms(session: Session, member: Member) -> list[Room]:
    """Rooms in which the member has been seen."""
    return list(session.exec(select(Room).join(RoomMember, col(RoomMember.room_id) == col(Room.id))
                             .where(RoomMember.member_id == member.id)).all())


def find_member_in_room(session: Session, room: Room, name: str) -> Member | None:
    """The member of the room with this display name (the latest seen, if several)."""
    return session.exec(
        select(Member).join(RoomMember, col(RoomMember.member_id) == col(Member.id))
        .where(RoomMember.room_id == room.id, Member.name == name)
        .order_by(col(Member.id).desc())
    ).first()


def has_leader_role(session: Session, room: Room, member: Member) -> bool:
    """Whether the member was appointed leader of the room in the chat."""
    return session.exec(select(LeaderRole.id).where(
        LeaderRole.room_id == room.id, LeaderRole.member_id == member.id)).first() is not None


def set_leader(session: Session, room: Room, member: Member, leader: bool) -> bool:
    """Grant or revoke the leader role; returns whether anything changed."""
    role = session.exec(select(LeaderRole).where(
        LeaderRole.room_id == room.id, LeaderRole.member_id == member.id)).first()
    if leader and role is None:
        session.add(LeaderRole(room_id=room.id or 0, member_id=member.id or 0))
        return True
    if not leader and role is not None:
        session.delete(role)
        return True
    return False


# --- deals ----------------------------------------------------------------------------------

def open_deals(session: Session, room: Room) -> list[Deal]:
    """The room's open deals, oldest first."""
    return list(session.exec(select(Deal).where(Deal.room_id == room.id, Deal.status == "open")
                             .order_by(col(Deal.id))).all())


def recent_deals(session: Session, room: Room, limit: int = 5) -> list[Deal]:
    """The room's latest deals, newest first, whatever their status."""
    return list(session.exec(select(Deal).where(Deal.room_id == room.id)
                             .order_by(col(Deal.id).desc()).limit(limit)).all())


def deal_items(session: Session, deal_id: int) -> list[Item]:
    """Items of a deal in their order."""
    return list(session.exec(select(Item).where(Item.deal_id == deal_id).order_by(col(Item.no))).all())


def lock_deal(session: Session, deal_id: int) -> Deal | None:
    """Load a deal for update: on PostgreSQL the row lock serialises concurrent orders."""
    return session.exec(select(Deal).where(Deal.id == deal_id).with_for_update()).first()


@dataclass(frozen=True)
class ItemTotal:
    """Active units ordered of one item."""

    item: Item
    qty: Decimal


def item_totals(session: Session, deal_id: int) -> list[ItemTotal]:
    """Active units per item of the deal, items in order (zero for an item nobody ordered)."""
    rows = session.exec(
        select(col(OrderLine.item_id), col(OrderLine.qty))
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(Order.deal_id == deal_id, Order.status == "active")
    ).all()
    sums: dict[int, Decimal] = {}
    for item_id, qty in rows:
        sums[item_id] = sums.get(item_id, ZERO) + qty
    return [ItemTotal(it, sums.get(it.id or 0, ZERO)) for it in deal_items(session, deal_id)]


@dataclass(frozen=True)
class BuyerLines:
    """One active order with its lines, for cards, summaries and announcements."""

    order: Order
    member: Member
    lines: tuple[tuple[Item, Decimal], ...]

    @property
    def amount(self) -> Decimal:
        return sum(((it.price or ZERO) * q for it, q in self.lines), ZERO)


def buyers(session: Session, deal_id: int) -> list[BuyerLines]:
    """Active orders of a deal with their non-zero lines, in the order they were placed."""
    items = {it.id: it for it in deal_items(session, deal_id)}
    orders = session.exec(select(Order, Member).join(Member, col(Member.id) == col(Order.member_id))
                          .where(Order.deal_id == deal_id, Order.status == "active")
                          .order_by(col(Order.id))).all()
    if not orders:
        return []
    lines = session.exec(select(OrderLine).where(
        col(OrderLine.order_id).in_([o.id for o, _ in orders]), OrderLine.qty > 0)).all()
    by_order: dict[int, list[tuple[Item, Decimal]]] = {}
    for line in lines:
        if line.qty > 0:
            by_order.setdefault(line.order_id, []).append((items[line.item_id], line.qty))
    out = []
    for order, member in orders:
        got = sorted(by_order.get(order.id or 0, []), key=lambda p: p[0].no)
        if got:
            out.append(BuyerLines(order, member, tuple(got)))
    return out


@dataclass(frozen=True)
class Progress:
    """How far a deal is: counted towards the threshold in its unit."""

    counted: Decimal
    threshold: Decimal | None
    unit: str
    stock_left: Decimal | None

    @property
    def missing(self) -> Decimal:
        if self.threshold is None:
            return ZERO
        return max(self.threshold - self.counted, ZERO)

    @property
    def reached(self) -> bool:
        return self.threshold is None or self.counted >= self.threshold


def progress(session: Session, deal: Deal) -> Progress:
    """The deal's count towards its threshold (units, people or orders) and stock left."""
    assert deal.id is not None
    totals = item_totals(session, deal.id)
    unit = deal.threshold_unit or (totals[0].item.unit if totals else None) or "份"
    if unit == "人":
        counted = Decimal(len({b.member.id for b in buyers(session, deal.id)}))
    elif unit == "单":
        counted = Decimal(len(buyers(session, deal.id)))
    else:
        same = [t.qty for t in totals if t.item.unit in (unit, None)]
        counted = sum(same or [t.qty for t in totals], ZERO)
    stock_left = None
    if deal.stock is not None:
        stock_left = max(deal.stock - sum((t.qty for t in totals), ZERO), ZERO)
    return Progress(counted, deal.threshold, unit, stock_left)


def close_deal(session: Session, deal: Deal, now: datetime) -> str | None:
    """Close an open deal exactly once: succeeded if its threshold is met, else failed.

    The status changes through a conditional UPDATE, so of two concurrent closers only one
    sees a row changed; the other gets None and announces nothing.

    Returns:
        The new status, or None if the deal was no longer open.
    """
    new_status = "succeeded" if progress(session, deal).reached else "failed"
    result = session.execute(update(Deal).where(col(Deal.id) == deal.id, col(Deal.status) == "open")
                             .values(status=new_status, closed_at=now))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(deal)
    return new_status


def cancel_deal(session: Session, deal: Deal, now: datetime, reason: str | None) -> bool:
    """Cancel an open deal once; its orders are void with it."""
    result = session.execute(update(Deal).where(col(Deal.id) == deal.id, col(Deal.status) == "open")
                             .values(status="cancelled", closed_at=now, cancel_reason=reason))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(deal)
    return True


# --- orders ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderChange:
    """A recorded change of one order line."""

    deal: Deal
    item: Item
    member: Member
    before: Decimal
    after: Decimal
    placed_for: str | None = None


@dataclass(frozen=True)
class OrderRefusal:
    """An order not recorded, with the numbers that explain why."""

    reason: Literal["limit", "stock", "closed", "qty", "nothing"]
    deal: Deal
    item: Item | None
    member: Member
    requested: Decimal = ZERO
    already: Decimal = ZERO
    allowed: Decimal = ZERO


@dataclass
class Milestones:
    """Progress milestones crossed by a change, each announced once per deal."""

    half: bool = False
    succeeded: bool = False
    sold_out: bool = False
    names: list[str] = field(default_factory=list)


def _find_order(session: Session, deal: Deal, member: Member, placed_for: str | None) -> Order | None:
    return session.exec(select(Order).where(
        Order.deal_id == deal.id, Order.member_id == member.id,
        Order.placed_for == placed_for if placed_for else col(Order.placed_for).is_(None),
    )).first()


def member_orders(session: Session, deal_id: int, member: Member) -> list[Order]:
    """All of a member's orders on a deal (their own and those placed for others)."""
    return list(session.exec(select(Order).where(Order.deal_id == deal_id,
                                                 Order.member_id == member.id)
                             .order_by(col(Order.id))).all())


def line_qty(session: Session, order: Order, item: Item) -> Decimal:
    """Current units of an item in an order (0 when there is no line)."""
    qty = session.exec(select(col(OrderLine.qty)).where(
        OrderLine.order_id == order.id, OrderLine.item_id == item.id)).first()
    return qty if qty is not None and order.status == "active" else ZERO


def change_order(session: Session, deal: Deal, item: Item, member: Member, qty: Decimal,
                 mode: Mode, now: datetime, *, note: str | None = None,
                 placed_for: str | None = None, max_qty: Decimal = Decimal(999)
                 ) -> OrderChange | OrderRefusal:
    """Add, set or subtract units of one item for a member, within limits and stock.

    The caller must have locked the deal (``lock_deal``) in this transaction.

    Args:
        session: The open transaction.
        deal: The deal, locked.
        item: The item of that deal.
        member: Who speaks; the order is theirs even when placed for someone else.
        qty: Units to add, the new total (set) or units to remove (sub).
        mode: "add", "set" or "sub".
        now: The message time.
        note: Kept on the order (building, pickup wish).
        placed_for: Name of the person the member orders for ("代王阿姨").
        max_qty: The largest quantity one line may hold.

    Returns:
        The change, or a refusal with the numbers.
    """
    if deal.status != "open":
        return OrderRefusal("closed", deal, item, member)
    if (qty <= 0 and mode != "set") or qty < 0 or qty > max_qty:
        return OrderRefusal("qty", deal, item, member, requested=qty, allowed=max_qty)
    order = _find_order(session, deal, member, placed_for)
    before = line_qty(session, order, item) if order else ZERO
    after = {"add": before + qty, "set": qty, "sub": max(before - qty, ZERO)}[mode]
    if mode == "sub" and before == 0:
        return OrderRefusal("nothing", deal, item, member)
    if after > max_qty:
        return OrderRefusal("qty", deal, item, member, requested=after, allowed=max_qty)
    increase = after - before
    if increase > 0:
        if deal.limit_per_member is not None and after > deal.limit_per_member:
            return OrderRefusal("limit", deal, item, member, requested=qty, already=before,
                                allowed=deal.limit_per_member)
        totals = {t.item.id: t.qty for t in item_totals(session, deal.id or 0)}
        if item.stock is not None and totals.get(item.id, ZERO) + increase > item.stock:
            left = max(item.stock - totals.get(item.id, ZERO), ZERO)
            return OrderRefusal("stock", deal, item, member, requested=qty, allowed=left)
        if deal.stock is not None and sum(totals.values(), ZERO) + increase > deal.stock:
            left = max(deal.stock - sum(totals.values(), ZERO), ZERO)
            return OrderRefusal("stock", deal, item, member, requested=qty, allowed=left)
    if order is None:
        order = Order(deal_id=deal.id or 0, member_id=member.id or 0, placed_for=placed_for,
                      note=note, created_at=now, updated_at=now)
        session.add(order)
        session.flush()
    elif order.status != "active":
        # A cancelled order that comes back starts from nothing.
        for old in session.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all():
            old.qty = ZERO
        order.status = "active"
    if note and note not in (order.note or ""):
        order.note = f"{order.note} {note}" if order.note else note
    line = session.exec(select(OrderLine).where(
        OrderLine.order_id == order.id, OrderLine.item_id == item.id)).first()
    if line is None:
        session.add(OrderLine(order_id=order.id or 0, item_id=item.id or 0, qty=after))
    else:
        line.qty = after
    order.updated_at = now
    session.flush()
    _refresh_order_status(session, order)
    return OrderChange(deal, item, member, before, after, placed_for)


def _refresh_order_status(session: Session, order: Order) -> None:
    total = session.exec(select(func.count()).select_from(OrderLine).where(
        OrderLine.order_id == order.id, OrderLine.qty > 0)).one()
    order.status = "active" if total else "cancelled"


def cancel_member_orders(session: Session, deal: Deal, member: Member, now: datetime,
                         items: Sequence[Item] = ()) -> list[OrderChange]:
    """Cancel the member's lines on a deal (all of them, or only the given items)."""
    changes: list[OrderChange] = []
    wanted = {it.id for it in items}
    all_items = {it.id: it for it in deal_items(session, deal.id or 0)}
    for order in member_orders(session, deal.id or 0, member):
        if order.status != "active":
            continue
        for line in session.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all():
            if line.qty > 0 and (not wanted or line.item_id in wanted):
                changes.append(OrderChange(deal, all_items[line.item_id], member, line.qty, ZERO,
                                           order.placed_for))
                line.qty = ZERO
        order.updated_at = now
        session.flush()
        _refresh_order_status(session, order)
    return changes


def check_milestones(session: Session, deal: Deal) -> Milestones:
    """Mark and return the milestones the deal has just reached (half way, 成团, sold out)."""
    found = Milestones()
    prog = progress(session, deal)
    if deal.threshold is not None and deal.threshold > 0:
        if not deal.success_announced and prog.counted >= deal.threshold:
            deal.success_announced = deal.half_announced = found.succeeded = True
        elif not deal.half_announced and deal.threshold >= 4 and prog.counted * 2 >= deal.threshold:
            deal.half_announced = found.half = True
    if deal.stock is not None and not deal.soldout_announced and prog.stock_left == 0:
        deal.soldout_announced = found.sold_out = True
    return found


def set_paid(session: Session, deal: Deal, member: Member, *, paid: bool | None = None,
             picked_up: bool | None = None) -> int:
    """Mark a member's active orders on a deal paid and/or picked up; returns how many."""
    count = 0
    for order in member_orders(session, deal.id or 0, member):
        if order.status != "active":
            continue
        if paid is not None:
            order.paid = paid
        if picked_up is not None:
            order.picked_up = picked_up
        count += 1
    return count
