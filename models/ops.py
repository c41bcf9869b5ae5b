"""Domain operations. Each runs inside the caller's transaction and keeps its invariants:
an order stays within the per-member limit and the stock, a deal closes exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import (
    Integer,
    bindparam,
    case,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    text,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.util import find_tables
from sqlmodel import Session, col, select

from models.prepared import Prepared
from models.tables import (
    BotAccount,
    Deal,
    Item,
    LeaderRole,
    Member,
    Order,
    OrderLine,
    PendingAck,
    PendingQuestion,
    ProcessedMessage,
    Room,
    RoomMember,
)
from models.types import AwareDateTime, Quantity

ZERO = Decimal(0)
Mode = Literal["add", "set", "sub"]


class Conflict(Exception):
    """Another transaction changed a row this one read; the whole message is run again."""


def chained_writes(session: Session) -> bool:
    """Whether dependent writes can go in one statement (PostgreSQL's data-modifying WITH),
    saving a round trip each; on SQLite, an in-process library, they run one by one."""
    return session.get_bind().dialect.name == "postgresql"


def _values(table: Any, prefix: str, *names: str) -> Any:
    """An INSERT of the named columns from parameters named ``prefix + column``. (In a
    chained statement no parameter may share a column's name: SQLAlchemy would take it for
    a value to set on that column.)"""
    return insert(table).values({name: bindparam(prefix + name) for name in names})


# --- rooms, members, roles ------------------------------------------------------------------

_UPSERTS: dict[tuple[str, str], Prepared] = {}


def _upsert_statement(session: Session, kind: str) -> Prepared:
    """A prebuilt INSERT … ON CONFLICT for this dialect (SQLite 3.35+ and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    prepared = _UPSERTS.get((dialect, kind))
    if prepared is None:
        from sqlalchemy.dialects import postgresql, sqlite

        insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
        if kind == "presence":
            stmt = insert_(RoomMember.__table__).values(  # type: ignore[attr-defined]
                room_id=bindparam("room_id"), member_id=bindparam("member_id")
            ).on_conflict_do_nothing(index_elements=["room_id", "member_id"])
        else:
            table = (Room if kind == "room" else Member).__table__  # type: ignore[union-attr]
            stmt = _renaming_upsert(insert_(table).values(
                platform_id=bindparam("platform_id"), name=bindparam("name")))
        prepared = _UPSERTS[(dialect, kind)] = Prepared(stmt)
    return prepared


def _renaming_upsert(stmt: Any) -> Any:
    """An INSERT of a row keyed by platform id that, if the row is there, updates its name;
    either way it returns the row's id."""
    return stmt.on_conflict_do_update(index_elements=["platform_id"], set_={
        "name": stmt.excluded.name}).returning(stmt.table.c.id)


def _upsert_present() -> Any:
    """PostgreSQL: ``upsert_member`` and ``note_presence`` in one statement, the member's
    upsert (``m``) and the presence row's (``p``) as WITH queries. Parameters: platform_id,
    name, room_id."""
    from sqlalchemy.dialects import postgresql

    found = _renaming_upsert(postgresql.insert(Member.__table__).values(  # type: ignore[attr-defined]
        platform_id=bindparam("platform_id"), name=bindparam("name"))).cte("m")
    presence = postgresql.insert(RoomMember.__table__).from_select(  # type: ignore[attr-defined]
        ["room_id", "member_id"], core_select(bindparam("room_id", type_=Integer), found.c.id)
    ).on_conflict_do_nothing(index_elements=["room_id", "member_id"]).cte("p")
    return core_select(found.c.id).add_cte(presence)


_UPSERT_PRESENT = Prepared(_upsert_present())  # PostgreSQL: upsert_member and note_presence in one


def upsert_room(session: Session, platform_id: str, name: str) -> Room:
    """The room with this platform id, created or renamed as needed, in one statement."""
    room_id = _upsert_statement(session, "room").run(session, {
        "platform_id": platform_id, "name": name}).scalar_one()
    return Room(id=room_id, platform_id=platform_id, name=name)


def upsert_member(session: Session, platform_id: str, name: str, *,
                  present_in: Room | None = None) -> Member:
    """The member with this platform id, created or renamed as needed, in one statement;
    with ``present_in``, also noted as seen in that room (``note_presence``)."""
    _write_member_writes(session)  # a rename put off before this one must not undo it
    params = {"platform_id": platform_id, "name": name}
    if present_in is not None and chained_writes(session):
        member_id = _UPSERT_PRESENT.run(session, {
            **params, "room_id": present_in.id}).scalar_one()
        return Member(id=member_id, platform_id=platform_id, name=name)
    member_id = _upsert_statement(session, "member").run(session, params).scalar_one()
    member = Member(id=member_id, platform_id=platform_id, name=name)
    if present_in is not None:
        note_presence(session, present_in, member)
    return member


def note_presence(session: Session, room: Room, member: Member) -> None:
    """Remember that the member is in the room."""
    _upsert_statement(session, "presence").run(session, {
        "room_id": room.id, "member_id": member.id})


_MEMBER_WRITES = "tuangou.deferred_member_writes"  # session.info key (see defer_member_writes)


def defer_member_writes(session: Session, member_id: int, name: str | None,
                        room_id: int | None) -> None:
    """PostgreSQL: a member's rename (to ``name``) and presence in a room (``note_presence``),
    put off until the session next runs an ORM statement on the member or presence tables
    (every read of members' names or presence is one) or ``write_deferred``
    before the commit: those put off meanwhile then take one statement together, at the
    commit the one that writes the batch's processed messages.

    For a batch's read-ahead (``bot.dispatcher``), which finds a speaker's member row before
    the messages ahead of theirs have run: the dispatcher puts off the writes when the
    speaker's turn comes, so the messages before it see the room's members as they were,
    and those after it as ``upsert_member`` would have left them."""
    session.info.setdefault(_MEMBER_WRITES, []).append(
        {"member_id": member_id, "name": name, "room_id": room_id})


def _presences(param: str) -> str:
    """PostgreSQL: an INSERT of the presences among member writes (``defer_member_writes``)
    that come as a JSON array in parameter ``param``."""
    presence = RoomMember.__table__.name  # type: ignore[attr-defined]
    return f"""
    INSERT INTO "{presence}" (room_id, member_id)
    SELECT room_id, member_id FROM json_to_recordset(CAST(:{param} AS json))
        AS r(member_id integer, room_id integer)
    WHERE room_id IS NOT NULL
    ON CONFLICT (room_id, member_id) DO NOTHING"""


def _member_writes() -> Any:
    """PostgreSQL: the member writes put off, renames and presences. The members to rename
    are found by their ids (``= ANY``): a join would have the planner scan the whole table
    whenever its row count is out of date."""
    member = Member.__table__.name  # type: ignore[attr-defined]
    return text(f"""
    WITH renamed AS (
        UPDATE "{member}" m SET name = r.name
        FROM json_to_recordset(CAST(:members AS json)) AS r(member_id integer, name text)
        WHERE m.id = ANY (ARRAY(
                SELECT member_id FROM json_to_recordset(CAST(:members AS json))
                    AS n(member_id integer, name text) WHERE name IS NOT NULL))
            AND m.id = r.member_id AND m.name <> r.name
    ) {_presences("members")}""")


_MEMBER_WRITES_SQL = Prepared(_member_writes())


def _write_member_writes(session: Session) -> None:
    rows = session.info.pop(_MEMBER_WRITES, None)
    if rows:
        _MEMBER_WRITES_SQL.run(session, {"members": _json_rows(rows)})


_MEMBER_TABLES = frozenset({Member.__table__, RoomMember.__table__})  # type: ignore[attr-defined]


@event.listens_for(Session, "do_orm_execute")
def _before_orm_statement(state: ORMExecuteState) -> None:
    # A statement that reads members or their presence must see the writes put off before it.
    if _MEMBER_WRITES in state.session.info and not _MEMBER_TABLES.isdisjoint(
            find_tables(cast(Any, state.statement), check_columns=True, include_joins=True)):
        _write_member_writes(cast(Session, state.session))


AckRow = tuple[str, datetime, str]  # a queued acknowledgement: (chat, queued at, payload)


@dataclass(slots=True)
class MessageRecord:
    """The processed-message row of a message being handled (handlers fill in the deal and
    item it was about); inserted with the message's effects by ``record_message``."""

    id: str
    received_at: datetime
    sender_name: str = ""
    body: str = ""
    room_id: int | None = None
    member_id: int | None = None
    deal_id: int | None = None
    item_no: int | None = None


_RECORD_COLUMNS = ("id", "room_id", "member_id", "sender_name", "body", "received_at", "deal_id",
                   "item_no")
_INSERT_PROCESSED = Prepared(_values(ProcessedMessage.__table__, "", *_RECORD_COLUMNS))  # type: ignore[attr-defined]
# PostgreSQL: the processed-message row and the message's ack in one statement.
_RECORD_WITH_ACK = Prepared(_values(PendingAck.__table__, "a_", "chat", "queued_at", "payload").add_cte(  # type: ignore[attr-defined]
    _values(ProcessedMessage.__table__, "m_", *_RECORD_COLUMNS).cte("r")))  # type: ignore[attr-defined]


def _record_many() -> Any:
    """PostgreSQL: the processed-message rows of several messages and all their acks in one
    statement, whatever their number, and the presences put off meanwhile: each set of
    rows comes as one JSON array (psycopg passes a string as it is; arrays per column cost
    it far more to encode)."""
    def rows(table: Any, names: Sequence[str], param: str) -> str:
        cols = ", ".join(names)
        return (f"INSERT INTO {table.name} ({cols}) SELECT {cols} "
                f"FROM json_populate_recordset(NULL::{table.name}, CAST(:{param} AS json))")

    records = rows(ProcessedMessage.__table__, _RECORD_COLUMNS, "records")  # type: ignore[attr-defined]
    acks = rows(PendingAck.__table__, ("chat", "queued_at", "payload"), "acks")  # type: ignore[attr-defined]
    return text(f"WITH p AS ({_presences('presences')}), r AS ({records}) {acks}")


_RECORD_MANY = Prepared(_record_many())


def _record_row(record: MessageRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _RECORD_COLUMNS}


_DEFERRED = "tuangou.deferred_records"  # session.info key: rows record_message put off


def record_message(session: Session, record: MessageRecord, acks: Sequence[AckRow] = (), *,
                   defer: bool = False) -> None:
    """Insert the processed-message row, and queue the message's acks (``queue_acks``) with
    it. Raises IntegrityError for a known message id (with ``defer``, when the rows are
    written: by ``write_deferred``, which the caller runs before its commit; nothing in the
    transaction may read processed messages before that, ``write_deferred`` first). On
    PostgreSQL the deferred rows of a whole batch of messages take one statement."""
    if defer and chained_writes(session):
        session.info.setdefault(_DEFERRED, []).append((record, tuple(acks)))
        return
    params = _record_row(record)
    if len(acks) == 1 and chained_writes(session):
        chat, at, payload = acks[0]
        _RECORD_WITH_ACK.run(session, {
            **{"m_" + k: v for k, v in params.items()},
            "a_chat": chat, "a_queued_at": at, "a_payload": payload})
        return
    _INSERT_PROCESSED.run(session, params)
    if acks:
        queue_acks(session, acks)


def write_deferred(session: Session) -> None:
    """Write what was put off until the commit: the member writes (``defer_member_writes``)
    and the processed-message rows and acks (``record_message(defer=True)``), on PostgreSQL
    in one statement (a rename, which is rare, in one of its own before it)."""
    deferred = session.info.pop(_DEFERRED, [])
    if not deferred or any(row["name"] for row in session.info.get(_MEMBER_WRITES, ())):
        _write_member_writes(session)
    if not deferred:
        return
    members = session.info.pop(_MEMBER_WRITES, [])  # only presences are left
    records = [_record_row(record) for record, _ in deferred]
    acks = [{"chat": chat, "queued_at": at, "payload": payload}
            for _, row_acks in deferred for chat, at, payload in row_acks]
    _RECORD_MANY.run(session, {"presences": _json_rows(members), "records": _json_rows(records),
                               "acks": _json_rows(acks)})


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, default=_json_time)


def _json_time(value: Any) -> str:
    # As AwareDateTime stores it: an instant, never a naive local time.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    raise TypeError(f"cannot write {value!r} as a row value")


_PENDING = PendingQuestion.__table__  # type: ignore[attr-defined]
_DELETE_PENDING = Prepared(_PENDING.delete().where(_PENDING.c.id == bindparam("row_id")))


def delete_pending_question(session: Session, row_id: int) -> None:
    """Remove a pending question once it was answered (or came too late to be)."""
    _DELETE_PENDING.run(session, {"row_id": row_id})


def member_rooms(session: Session, member: Member) -> list[Room]:
    """Rooms in which the member has been seen."""
    return list(session.exec(select(Room).join(RoomMember, col(RoomMember.room_id) == col(Room.id))
                             .where(RoomMember.member_id == member.id)).all())


def room_leaders(session: Session, room_platform_id: str,
                 named: Mapping[str, Sequence[str]]) -> list[Member]:
    """Who leads a room as far as the database knows: members who opened deals in it, were
    appointed in the chat, or are seen in it under a name config.toml lists for it
    (``named``: room name -> leader names)."""
    room = session.exec(select(Room).where(Room.platform_id == room_platform_id)).first()
    if room is None:
        return []
    openers = select(Deal.leader_id).where(Deal.room_id == room.id)
    appointed = select(LeaderRole.member_id).where(LeaderRole.room_id == room.id)
    seen = select(RoomMember.member_id).where(RoomMember.room_id == room.id)
    return list(session.exec(select(Member).where(or_(
        col(Member.id).in_(openers), col(Member.id).in_(appointed),
        col(Member.id).in_(seen) & col(Member.name).in_(list(named.get(room.name, ()))),
    )).order_by(col(Member.id))).all())


def any_member_named(session: Session, room: Room, names: Collection[str]) -> bool:
    """Whether a member of the room goes by one of these display names (one query)."""
    return session.exec(
        select(Member.id).join(RoomMember, col(RoomMember.member_id) == col(Member.id))
        .where(RoomMember.room_id == room.id, col(Member.name).in_(list(names))).limit(1)
    ).first() is not None


def find_member_in_room(session: Session, room: Room, name: str) -> Member | None:
    """The member of the room with this display name (the latest seen, if several)."""
    return session.exec(
        select(Member).join(RoomMember, col(RoomMember.member_id) == col(Member.id))
        .where(RoomMember.room_id == room.id, Member.name == name)
        .order_by(col(Member.id).desc())
    ).first()


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

_OPEN_DEALS = (select(Deal).where(col(Deal.room_id) == bindparam("room_id"), col(Deal.status) == "open")
               .order_by(col(Deal.id)))


def open_deals(session: Session, room: Room) -> list[Deal]:
    """The room's open deals, oldest first."""
    return list(session.exec(_OPEN_DEALS, params={"room_id": room.id}).all())  # type: ignore[call-overload]


def recent_deals(session: Session, room: Room, limit: int = 5) -> list[Deal]:
    """The room's latest deals, newest first, whatever their status."""
    return list(session.exec(select(Deal).where(Deal.room_id == room.id)
                             .order_by(col(Deal.id).desc()).limit(limit)).all())


def live_deals(session: Session, limit: int | None = None) -> list[Deal]:
    """Deals that may still have something ahead (open or succeeded: a close, a reminder, a
    delivery), oldest first; with ``limit``, only the newest that many."""
    query = select(Deal).where(col(Deal.status).in_(["open", "succeeded"]))
    if limit is None:
        return list(session.exec(query.order_by(col(Deal.id))).all())
    return sorted(session.exec(query.order_by(col(Deal.id).desc()).limit(limit)).all(),
                  key=lambda d: d.id or 0)


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
    """Active units per item of the deal, items in order (read fresh from the counters)."""
    return [ItemTotal(it, it.ordered) for it in session.exec(
        select(Item).where(Item.deal_id == deal_id).order_by(col(Item.no))
        .execution_options(populate_existing=True)).all()]


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


Counts = tuple[Decimal, Decimal | None]  # a deal's units ordered and its stock


@dataclass(frozen=True)
class Progress:
    """How far a deal is: counted towards the threshold in its unit."""

    counted: Decimal
    threshold: Decimal | None
    unit: str
    stock_left: Decimal | None

    @property
    def reached(self) -> bool:
        return self.threshold is None or self.counted >= self.threshold


_ITEM_T = Item.__table__  # type: ignore[attr-defined]
_DEAL_T = Deal.__table__  # type: ignore[attr-defined]
_ORDER_T = Order.__table__  # type: ignore[attr-defined]
_LINE_T = OrderLine.__table__  # type: ignore[attr-defined]
_COUNTS = Prepared(core_select(_ITEM_T.c.ordered, _ITEM_T.c.unit, _DEAL_T.c.stock.label("deal_stock"))
                   .join(_DEAL_T, _DEAL_T.c.id == _ITEM_T.c.deal_id)
                   .where(_ITEM_T.c.deal_id == bindparam("deal_id")).order_by(_ITEM_T.c.no))


def _threshold_unit(deal: Deal, first_item_unit: str | None) -> str:
    """What a deal's threshold counts: its own unit, else its first item's, else 份."""
    return deal.threshold_unit or first_item_unit or "份"


def progress(session: Session, deal: Deal) -> Progress:
    """The deal's count towards its threshold (units, people or orders) and stock left."""
    assert deal.id is not None
    totals = _COUNTS.run(session, {"deal_id": deal.id}).all()
    unit = _threshold_unit(deal, totals[0].unit if totals else None)
    if unit in ("人", "单"):
        what = func.count(func.distinct(Order.member_id)) if unit == "人" else func.count(col(Order.id))
        counted = Decimal(session.exec(select(what).where(
            Order.deal_id == deal.id, Order.status == "active")).one())
    else:
        same = [t.ordered for t in totals if t.unit in (unit, None)]
        counted = sum(same or [t.ordered for t in totals], ZERO)
    stock_left = None
    stock = totals[0].deal_stock if totals else deal.stock  # read fresh: 补货 may have added
    if stock is not None:
        stock_left = max(stock - sum((t.ordered for t in totals), ZERO), ZERO)
    return Progress(counted, deal.threshold, unit, stock_left)


def progress_from_counts(deal: Deal, items: Sequence[Item], counts: Counts) -> Progress | None:
    """The deal's progress from its counters as an order change returned them, without reading
    them again; None where the count needs more than the deal's total (a threshold in people
    or orders, or items in different units counted apart)."""
    unit = _threshold_unit(deal, items[0].unit if items else None)
    if unit in ("人", "单") or len({it.unit for it in items}) > 1:
        return None
    ordered, stock = counts
    stock_left = None if stock is None else max(stock - ordered, ZERO)
    return Progress(ordered, deal.threshold, unit, stock_left)


def close_deal(session: Session, deal: Deal, now: datetime) -> str | None:
    """Close an open deal exactly once: succeeded if its threshold is met, else failed.

    The status changes through a conditional UPDATE, so of two concurrent closers only one
    sees a row changed; the other gets None and announces nothing.

    Returns:
        The new status, or None if the deal was no longer open.
    """
    # The row lock first: an order moving the deal's counter right now commits before the
    # count is read (PostgreSQL), so a deal is never closed as failed with its threshold met.
    lock_deal(session, deal.id or 0)
    new_status = "succeeded" if progress(session, deal).reached else "failed"
    if _execute(session, update(Deal).where(col(Deal.id) == deal.id, col(Deal.status) == "open")
                .values(status=new_status, closed_at=now)) != 1:
        return None
    session.refresh(deal)
    return new_status


def cancel_deal(session: Session, deal: Deal, now: datetime, reason: str | None) -> bool:
    """Cancel an open deal once; its orders are void with it."""
    if _execute(session, update(Deal).where(col(Deal.id) == deal.id, col(Deal.status) == "open")
                .values(status="cancelled", closed_at=now, cancel_reason=reason)) != 1:
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
    # The deal's (ordered, stock) right after this change moved its counter (None when the
    # quantity stayed): the counter row is locked until the commit, so this is current.
    counts: Counts | None = None


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


def member_orders(session: Session, deal_id: int, member: Member, *,
                  lock: bool = False) -> list[Order]:
    """All of a member's orders on a deal (their own and those placed for others); ``lock``
    holds their rows until the commit, for a change (see ``_ORDER_STATE``)."""
    query = select(Order).where(Order.deal_id == deal_id, Order.member_id == member.id)
    if lock:  # (and read the rows afresh, not as this session may have them already)
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.exec(query.order_by(col(Order.id))).all())


@dataclass
class OrderState:
    """A member's order on a deal as read for a change (all None: there is none yet)."""

    order_id: int | None = None
    status: str | None = None
    note: str | None = None
    lines: dict[int, tuple[int, Decimal]] = field(default_factory=dict)  # item id -> (line id, qty)


# The order path runs on prebuilt Core statements: SQLAlchemy compiles each once, and a burst
# of orders pays for SQL, not for building expressions and ORM bookkeeping.
def orders_for_change(member_id: Any, *where: Any) -> Any:
    """A member's orders with their lines (one row per line; an order without lines has one
    row of NULLs), read to be changed: the order rows stay locked until the commit
    (PostgreSQL; SQLite writes one at a time), so two changes of one order through two
    workers run one after the other; the quantity of the line changed is checked again by
    its UPDATE, and the order's status worked out there (``_ORDER_SET``). ``where``: which
    orders."""
    return (core_select(_ORDER_T.c.deal_id, _ORDER_T.c.id, _ORDER_T.c.status, _ORDER_T.c.note,
                        _LINE_T.c.id.label("line_id"), _LINE_T.c.item_id, _LINE_T.c.qty)
            .select_from(_ORDER_T.outerjoin(_LINE_T, _LINE_T.c.order_id == _ORDER_T.c.id))
            .where(_ORDER_T.c.member_id == member_id, *where)
            .with_for_update(of=_ORDER_T))


def order_states(rows: Sequence[Sequence[Any]]) -> dict[int, OrderState]:
    """Deal id -> the order state, from ``orders_for_change`` rows of one member's own orders
    (deal id, order id, status, note, line id, item id, quantity)."""
    states: dict[int, OrderState] = {}
    for deal_id, order_id, status, note, line_id, item_id, qty in rows:
        state = states.get(deal_id)
        if state is None:
            state = states[deal_id] = OrderState(order_id, status, note)
        if line_id is not None:
            state.lines[item_id] = (line_id, qty)
    return states


_ORDER_STATE = Prepared(orders_for_change(
    bindparam("member_id"), _ORDER_T.c.deal_id == bindparam("deal_id"),
    func.coalesce(_ORDER_T.c.placed_for, "") == bindparam("placed_for")))
_DELTA = bindparam("delta", type_=Quantity())


def _counter_update(table: Any, *, guard_open: bool, guard_stock: bool, key: str = "row_id") -> Any:
    cond = [table.c.id == bindparam(key)]
    if guard_open:
        cond.append(table.c.status == "open")
    if guard_stock:
        cond.append(or_(table.c.stock.is_(None), table.c.ordered + _DELTA <= table.c.stock))
    return update(table).where(*cond).values(ordered=table.c.ordered + _DELTA)


_DEAL_ADD = Prepared(_counter_update(_DEAL_T, guard_open=True, guard_stock=True).returning(
    _DEAL_T.c.ordered, _DEAL_T.c.stock))
_DEAL_SUB = Prepared(_counter_update(_DEAL_T, guard_open=True, guard_stock=False).returning(
    _DEAL_T.c.ordered, _DEAL_T.c.stock))
_DEAL_UNDO = Prepared(_counter_update(_DEAL_T, guard_open=False, guard_stock=False))
_ITEM_ADD = Prepared(_counter_update(_ITEM_T, guard_open=False, guard_stock=True))
_ITEM_SUB = Prepared(_counter_update(_ITEM_T, guard_open=False, guard_stock=False))


def _reserve_chained(grow: bool) -> Any:
    """Both counter UPDATEs in one statement: the item's runs only if the deal's matched;
    the row says the deal's new (ordered, stock) and whether the item's matched too."""
    deal, item = _reserve_ctes(grow)
    return core_select(deal.c.ordered, deal.c.stock, _row_count(item, "items"))


def _reserve_ctes(grow: bool) -> tuple[Any, Any]:
    deal = _counter_update(_DEAL_T, guard_open=True, guard_stock=grow, key="deal_row").returning(
        _DEAL_T.c.ordered, _DEAL_T.c.stock).cte("d")
    item = (_counter_update(_ITEM_T, guard_open=False, guard_stock=grow, key="item_row")
            .where(exists(core_select(deal.c.ordered))).returning(_ITEM_T.c.id).cte("i"))
    return deal, item


def _row_count(cte: Any, label: str) -> Any:
    return core_select(func.count()).select_from(cte).scalar_subquery().label(label)


_RESERVE_ADD = Prepared(_reserve_chained(True))
_RESERVE_SUB = Prepared(_reserve_chained(False))
# Conditional on the quantity read: a concurrent change of the same line (the same member
# ordering through two workers at once) makes it match nothing, and the message is retried
# on fresh state, so the per-member limit is checked against what is really there.
_LINE_SET = update(_LINE_T).where(
    _LINE_T.c.id == bindparam("line_id"), _LINE_T.c.qty == bindparam("old_qty", type_=Quantity())
).values(qty=bindparam("new_qty", type_=Quantity()))

_LINE_SET_RUN = Prepared(_LINE_SET)


def _set_line(session: Session, line_id: int, old: Decimal, new: Decimal) -> None:
    if _LINE_SET_RUN.run(session, {"line_id": line_id, "old_qty": old, "new_qty": new}).rowcount != 1:
        raise Conflict(f"order line {line_id} changed meanwhile")


# The order's status follows from its lines ("active": some line above 0), worked out by the
# UPDATE itself: the line being changed at its new quantity, the others as they are when it
# runs (a line another worker added meanwhile counts, though the read before missed it).
_LINE_ID = bindparam("line_id", type_=Integer)  # None: the line is new
_OTHER_LINE_ABOVE_0 = exists(core_select(_LINE_T.c.id).where(
    _LINE_T.c.order_id == bindparam("order_row"), _LINE_T.c.qty > 0,
    or_(_LINE_ID.is_(None), _LINE_T.c.id != _LINE_ID)))
_ORDER_SET = update(_ORDER_T).where(_ORDER_T.c.id == bindparam("order_row")).values(
    status=case((or_(bindparam("new_qty", type_=Quantity()) > 0, _OTHER_LINE_ABOVE_0), "active"),
                else_="cancelled"),
    note=bindparam("new_note"),
    updated_at=bindparam("now", type_=AwareDateTime()))
_ORDER_SET_RUN = Prepared(_ORDER_SET)


# PostgreSQL: a new order with its first line, and a line change with its order's status, each
# in one statement (see ``chained_writes``).
_ORDER_COLUMNS = ("deal_id", "member_id", "placed_for", "note", "status", "paid", "picked_up",
                  "created_at", "updated_at")


def _new_order_with_line(*guard: Any) -> Any:
    """A new order (parameters ``o_`` + column) with its first line (line_item, line_qty),
    where ``guard`` holds."""
    order = insert(_ORDER_T).from_select(list(_ORDER_COLUMNS), core_select(
        *[bindparam("o_" + name, type_=_ORDER_T.c[name].type) for name in _ORDER_COLUMNS]
    ).where(*guard)).returning(_ORDER_T.c.id).cte("o")
    return insert(_LINE_T).from_select(["order_id", "item_id", "qty"], core_select(
        order.c.id, bindparam("line_item", type_=Integer), bindparam("line_qty", type_=Quantity())))


def _line_and_order(*guard: Any) -> Any:
    """The line's new quantity (if it still holds the one read), where ``guard`` holds, and
    then its order's status; returns the order's id if the line matched."""
    line = _LINE_SET.where(*guard).returning(_LINE_T.c.id).cte("l")
    return _ORDER_SET.where(exists(core_select(line.c.id))).returning(_ORDER_T.c.id)


def _reserve_and_new_order() -> Any:
    """The counters (``_reserve_chained``) and, if both moved, a new order with its first
    line: one statement for a member's first order of a deal."""
    deal, item = _reserve_ctes(True)
    line = _new_order_with_line(exists(core_select(item.c.id))).cte("l")
    return core_select(deal.c.ordered, deal.c.stock, _row_count(item, "items")).add_cte(line)


def _reserve_and_set_line(grow: bool) -> Any:
    """The counters and, if both moved, ``_line_and_order``: one statement for a change of
    an order line. ``lines`` says whether the line matched."""
    deal, item = _reserve_ctes(grow)
    order = _line_and_order(exists(core_select(item.c.id))).cte("o")
    return core_select(deal.c.ordered, deal.c.stock, _row_count(item, "items"),
                       _row_count(order, "lines"))


_INSERT_ORDER_WITH_LINE = Prepared(_new_order_with_line())
_SET_LINE_AND_ORDER = Prepared(_line_and_order())
_RESERVE_NEW_ORDER = Prepared(_reserve_and_new_order())
_RESERVE_SET_LINE = {grow: Prepared(_reserve_and_set_line(grow)) for grow in (True, False)}
_INSERT_ORDER = Prepared(_values(_ORDER_T, "", *_ORDER_COLUMNS).returning(_ORDER_T.c.id))
_INSERT_LINE = Prepared(_values(_LINE_T, "", "order_id", "item_id", "qty"))


def _order_state(session: Session, deal: Deal, member: Member, placed_for: str | None) -> OrderState:
    rows = _ORDER_STATE.run(session, {
        "deal_id": deal.id, "member_id": member.id, "placed_for": placed_for or ""}).all()
    return order_states(rows).get(deal.id or 0, OrderState())


def own_quantities(session: Session, deal: Deal, member: Member) -> dict[int, Decimal]:
    """Item id -> units the member has ordered for themselves on the deal (active, above 0)."""
    state = _order_state(session, deal, member, None)
    if state.status != "active":
        return {}
    return {item_id: qty for item_id, (_, qty) in state.lines.items() if qty > 0}


def _reserve(session: Session, deal: Deal, item: Item, delta: Decimal) -> Counts | str:
    """Move the deal's and the item's counters by ``delta`` if the deal is open and the stock
    allows; returns the deal's new (ordered, stock), else "closed" or "stock".

    Conditional UPDATEs, not read-then-write: on PostgreSQL the row lock they take makes a
    concurrent order (or the close) wait and re-check, so stock can never be oversold and an
    order can never land on a deal that closed meanwhile.
    """
    grow = delta > 0
    if chained_writes(session):
        counts = (_RESERVE_ADD if grow else _RESERVE_SUB).run(session, {
            "deal_row": deal.id, "item_row": item.id, "delta": delta}).first()
        return _reserved(session, deal, delta, counts, counts is not None and counts.items == 1)
    counts = (_DEAL_ADD if grow else _DEAL_SUB).run(session, {"row_id": deal.id, "delta": delta}).first()
    item_moved = counts is not None and (_ITEM_ADD if grow else _ITEM_SUB).run(
        session, {"row_id": item.id, "delta": delta}).rowcount == 1
    return _reserved(session, deal, delta, counts, item_moved)


def _reserved(session: Session, deal: Deal, delta: Decimal, counts: Any,
              item_moved: bool) -> Counts | str:
    """What the counter updates came to: the deal's new (ordered, stock), or "closed" or
    "stock" (the deal's counter moved back if only the item's stock was short)."""
    if counts is None:
        status = session.connection().execute(
            core_select(_DEAL_T.c.status).where(_DEAL_T.c.id == deal.id)).scalar_one()
        return "closed" if status != "open" else "stock"
    if not item_moved:
        _DEAL_UNDO.run(session, {"row_id": deal.id, "delta": -delta})
        return "stock"
    return counts.ordered, counts.stock


def _stock_left(session: Session, deal: Deal, item: Item) -> Decimal:
    conn = session.connection()
    lefts = []
    for table, row_id in ((_DEAL_T, deal.id), (_ITEM_T, item.id)):
        stock, ordered = conn.execute(core_select(table.c.stock, table.c.ordered)
                                      .where(table.c.id == row_id)).one()
        if stock is not None:
            lefts.append(stock - ordered)
    return max(min(lefts), ZERO) if lefts else ZERO


def change_order(session: Session, deal: Deal, item: Item, member: Member, qty: Decimal,
                 mode: Mode, now: datetime, *, note: str | None = None,
                 placed_for: str | None = None, max_qty: Decimal = Decimal(999),
                 known: OrderState | None = None) -> OrderChange | OrderRefusal:
    """Add, set or subtract units of one item for a member, within limits and stock.

    Args:
        session: The open transaction.
        deal: The deal (its status is re-checked by the counter update).
        item: The item of that deal.
        member: Who speaks; the order is theirs even when placed for someone else.
        qty: Units to add, the new total (set) or units to remove (sub).
        mode: "add", "set" or "sub".
        now: The message time.
        note: Kept on the order (building, pickup wish).
        placed_for: Name of the person the member orders for ("代王阿姨").
        max_qty: The largest quantity one line may hold.
        known: The order's state as read and locked (``orders_for_change``) earlier in this
            transaction with nothing changed since; else it is read here.

    Returns:
        The change, or a refusal with the numbers.
    """
    if deal.status != "open":
        return OrderRefusal("closed", deal, item, member)
    if (qty <= 0 and mode != "set") or qty < 0 or qty > max_qty:
        return OrderRefusal("qty", deal, item, member, requested=qty, allowed=max_qty)
    state = known if known is not None else _order_state(session, deal, member, placed_for)
    line_id, line_qty_now = state.lines.get(item.id or 0, (None, ZERO))
    before = line_qty_now if state.status == "active" else ZERO
    after = {"add": before + qty, "set": qty, "sub": max(before - qty, ZERO)}[mode]
    if mode == "sub" and before == 0:
        return OrderRefusal("nothing", deal, item, member)
    if after > max_qty:
        return OrderRefusal("qty", deal, item, member, requested=after, allowed=max_qty)
    if after > before and deal.limit_per_member is not None and after > deal.limit_per_member:
        return OrderRefusal("limit", deal, item, member, requested=qty, already=before,
                            allowed=deal.limit_per_member)
    new_note = state.note
    if note and note not in (state.note or ""):
        new_note = f"{state.note} {note}" if state.note else note
    order = {"deal_id": deal.id, "member_id": member.id, "placed_for": placed_for,
             "note": new_note, "status": "active" if after > 0 else "cancelled", "paid": False,
             "picked_up": False, "created_at": now, "updated_at": now}
    new_order = {**{"o_" + k: v for k, v in order.items()}, "line_item": item.id, "line_qty": after}
    # (an existing order's status is worked out by the UPDATE: see ``_ORDER_SET``)
    line_change = {"line_id": line_id, "old_qty": line_qty_now, "new_qty": after,
                   "order_row": state.order_id, "new_note": new_note, "now": now}
    chained = chained_writes(session)
    # PostgreSQL: a new order, or a change of a line it has, goes with the counters in one
    # statement (an order's new line for another item is rare and takes three).
    combined = chained and (state.order_id is None or line_id is not None)
    counts = None
    if after != before:
        delta = after - before
        if combined:
            params = {"deal_row": deal.id, "item_row": item.id, "delta": delta}
            if state.order_id is None:
                row = _RESERVE_NEW_ORDER.run(session, {**params, **new_order}).first()
            else:
                row = _RESERVE_SET_LINE[delta > 0].run(session, {**params, **line_change}).first()
            reserved = _reserved(session, deal, delta, row, row is not None and row.items == 1)
            if isinstance(reserved, tuple) and state.order_id is not None and row.lines != 1:
                raise Conflict(f"order line {line_id} changed meanwhile")
        else:
            reserved = _reserve(session, deal, item, delta)
        if reserved == "closed":
            return OrderRefusal("closed", deal, item, member)
        if reserved == "stock":
            return OrderRefusal("stock", deal, item, member, requested=qty,
                                allowed=_stock_left(session, deal, item))
        counts = reserved if isinstance(reserved, tuple) else None
        if combined:
            return OrderChange(deal, item, member, before, after, placed_for, counts)
    if state.order_id is None:
        if chained:
            _INSERT_ORDER_WITH_LINE.run(session, new_order)
            return OrderChange(deal, item, member, before, after, placed_for, counts)
        state.order_id = _INSERT_ORDER.run(session, order).scalar_one()
    elif line_id is not None and chained:
        if _SET_LINE_AND_ORDER.run(session, line_change).first() is None:
            raise Conflict(f"order line {line_id} changed meanwhile")
        return OrderChange(deal, item, member, before, after, placed_for, counts)
    else:
        _ORDER_SET_RUN.run(session, line_change)
    if line_id is None:
        _INSERT_LINE.run(session, {"order_id": state.order_id, "item_id": item.id, "qty": after})
    else:
        _set_line(session, line_id, line_qty_now, after)
    return OrderChange(deal, item, member, before, after, placed_for, counts)


def cancel_member_orders(session: Session, deal: Deal, member: Member, now: datetime,
                         items: Sequence[Item] = ()) -> list[OrderChange]:
    """Cancel the member's lines on a deal (all of them, or only the given items)."""
    if deal.status != "open":
        return []
    changes: list[OrderChange] = []
    wanted = {it.id for it in items}
    all_items = {it.id: it for it in deal_items(session, deal.id or 0)}
    for order in member_orders(session, deal.id or 0, member, lock=True):
        if order.status != "active":
            continue
        lines = session.exec(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        for line in lines:
            if line.qty > 0 and (not wanted or line.item_id in wanted):
                item = all_items[line.item_id]
                counts = _reserve(session, deal, item, -line.qty)
                if not isinstance(counts, tuple):
                    return changes  # the deal closed meanwhile: nothing more to cancel
                changes.append(OrderChange(deal, item, member, line.qty, ZERO, order.placed_for,
                                           counts))
                _set_line(session, line.id or 0, line.qty, ZERO)
                set_committed_value(line, "qty", ZERO)
        order.updated_at = now
        order.status = "active" if any(ln.qty > 0 for ln in lines) else "cancelled"
    return changes


def _execute(session: Session, statement: Any) -> int:
    """Run an UPDATE without syncing the session (callers re-read what they need)."""
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(result.rowcount)  # type: ignore[attr-defined]


def _claim(session: Session, deal: Deal, flag: str) -> bool:
    """Set a once-only flag of the deal; True only for the one transaction that set it."""
    column = getattr(Deal, flag)
    done = _execute(session, update(Deal).where(col(Deal.id) == deal.id, column.is_(False))
                    .values({flag: True})) == 1
    if done:
        set_committed_value(deal, flag, True)
    return done


def check_milestones(session: Session, deal: Deal, prog: Progress | None = None) -> Milestones:
    """Mark and return the milestones the deal has just reached (half way, 成团, sold out)."""
    found = Milestones()
    prog = prog or progress(session, deal)
    if deal.threshold is not None and deal.threshold > 0:
        if not deal.success_announced and prog.counted >= deal.threshold:
            found.succeeded = _claim(session, deal, "success_announced")
            if found.succeeded:
                _claim(session, deal, "half_announced")
        elif not deal.half_announced and deal.threshold >= 4 and prog.counted * 2 >= deal.threshold:
            found.half = _claim(session, deal, "half_announced")
    if prog.stock_left == 0:  # the flag in memory may predate a 补货: let the UPDATE decide
        found.sold_out = _claim(session, deal, "soldout_announced")
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


# --- the acknowledgement queue ---------------------------------------------------------------

_ACK_T = PendingAck.__table__  # type: ignore[attr-defined]
_INSERT_ACK = Prepared(_values(_ACK_T, "", "chat", "queued_at", "payload"))


def queue_acks(session: Session, acks: Sequence[tuple[str, datetime, str]]) -> None:
    """Queue (chat, queued_at, payload) rows in the caller's transaction."""
    for chat, at, payload in acks:
        _INSERT_ACK.run(session, {"chat": chat, "queued_at": at, "payload": payload})


def _claimable(stale_before: Any) -> Any:
    """Rows nobody is sending: never claimed, or claimed by a worker that died meanwhile."""
    return or_(_ACK_T.c.claimed_at.is_(None), _ACK_T.c.claimed_at < stale_before)


_STALE = bindparam("stale_before", type_=AwareDateTime())
_OLDEST = func.min(_ACK_T.c.queued_at)
_QUEUED_CHATS = Prepared(core_select(_ACK_T.c.chat, _OLDEST).where(_claimable(_STALE))
                         .group_by(_ACK_T.c.chat).order_by(_OLDEST, _ACK_T.c.chat))


def queued_ack_chats(session: Session, stale_before: datetime) -> list[tuple[str, datetime]]:
    """(chat, when its oldest claimable ack was queued) for every chat with acks waiting,
    the chat waiting longest first (ties by chat key: the same order on every database)."""
    rows = _QUEUED_CHATS.run(session, {"stale_before": stale_before}).all()
    return [(chat, oldest) for chat, oldest in rows]


def count_acks(session: Session) -> int:
    """Acks queued or being sent."""
    return int(session.connection().execute(core_select(func.count()).select_from(_ACK_T)).scalar_one())


def _claim_statement(if_due: bool) -> Prepared:
    mine = [_ACK_T.c.chat == bindparam("ack_chat"), _claimable(_STALE)]
    stmt = update(_ACK_T).where(*mine)
    if if_due:
        oldest = core_select(func.min(_ACK_T.c.queued_at)).where(*mine)
        stmt = stmt.where(oldest.scalar_subquery() <= bindparam("due_before", type_=AwareDateTime()))
    return Prepared(stmt.values(claimed_at=bindparam("now", type_=AwareDateTime()))
                    .returning(_ACK_T.c.id, _ACK_T.c.payload))


_CLAIM = {True: _claim_statement(True), False: _claim_statement(False)}


def claim_acks(session: Session, chat: str, due_before: datetime | None, now: datetime,
               stale_before: datetime) -> list[tuple[int, str]]:
    """Claim a chat's claimable acks, if its oldest is due: (id, payload) in queue order.

    One conditional UPDATE: two workers claiming at once cannot both get a row (on
    PostgreSQL the second waits for the first's row locks, then finds the rows claimed),
    and a worker whose rival claimed first finds the acks queued since not yet due.
    """
    params = {"ack_chat": chat, "stale_before": stale_before, "now": now}
    if due_before is not None:
        params["due_before"] = due_before
    rows = _CLAIM[due_before is not None].run(session, params).all()
    return sorted((row_id, payload) for row_id, payload in rows)


def renew_claims(session: Session, ids: Sequence[int], now: datetime) -> None:
    """Keep acks claimed that are still on their way (waiting for the pacer)."""
    session.connection().execute(update(_ACK_T).where(_ACK_T.c.id.in_(ids)).values(
        claimed_at=bindparam("now", type_=AwareDateTime())), {"now": now})


def forget_acks(session: Session, ids: Sequence[int]) -> None:
    """Delete acks whose message was sent."""
    session.connection().execute(delete(_ACK_T).where(_ACK_T.c.id.in_(ids)))


# --- the installation's own accounts ----------------------------------------------------------

def register_bot(session: Session, platform_id: str, name: str) -> None:
    """Note an account a bot process is logged in as (once)."""
    if session.get(BotAccount, platform_id) is None:
        session.add(BotAccount(platform_id=platform_id, name=name))


def bot_ids(session: Session) -> set[str]:
    """Every account a bot of this installation is logged in as."""
    return set(session.exec(select(BotAccount.platform_id)).all())
