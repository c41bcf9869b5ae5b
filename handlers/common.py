"""What every handler shares: the turn being handled, its outcome, routers and deal views."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Integer,
    String,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    null,
    or_,
    text,
    union_all,
)
from sqlalchemy import select as core_select
from sqlmodel import Session

from bot.config import Settings
from bot.render import fmt_qty
from bot.types import Ack, DealProgress, IncomingMessage, Reply
from handlers.parsing.order import CatalogItem
from handlers.parsing.text import normalize
from handlers.parsing.times import format_time
from handlers.parsing.wechat import Quote, strip_mentions
from models import ops
from models.prepared import Prepared
from models.tables import (
    Deal,
    Item,
    LeaderRole,
    Member,
    Order,
    OrderLine,
    PendingQuestion,
    Room,
    RoomMember,
)
from models.types import AwareDateTime, Quantity

T = TypeVar("T")

MAX_DEAL_ID = 2**62  # "#99999999999999999999" names no deal (and no database integer)
STATUS_TEXT = {"open": "进行中", "succeeded": "已成团", "failed": "未成团",
               "cancelled": "已取消"}
CLOSED_TEXT = {"succeeded": "已截团", "failed": "已截团（未成团）", "cancelled": "已取消"}


class ItemCache:
    """Items of deals by deal id, kept across messages: names, numbers and units never change
    once a deal is open, and stock and counts are always read from the database."""

    def __init__(self, size: int = 2048) -> None:
        self._items: dict[int, list[Item]] = {}
        self._size = size

    def clear(self) -> None:
        self._items.clear()

    def get(self, session: Session, deal_id: int) -> list[Item]:
        items = self._items.get(deal_id)
        if items is None:
            items = ops.deal_items(session, deal_id)
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[deal_id] = items
        return items


def catalog_item(item: Item, items_in_deal: int) -> CatalogItem:
    """An item as the order parser matches it: its name in the normalised form the member's
    text is in (simplified, lower-case), whatever script the leader wrote it in."""
    return CatalogItem(item.deal_id, item.no, normalize(item.name), item.unit, items_in_deal)


RECENTLY_CLOSED = timedelta(days=3)  # how long an order for a closed deal is answered


@dataclass(frozen=True)
class RoomState:
    """What the order path reads of a room on every message, in one query: the open deals'
    ids (oldest first), the deals closed lately (newest first, at most three) and the
    speaker's pending question, if any: (row id, asked at, payload), whether the speaker
    was appointed a leader of the room in the chat, and the speaker's own order on each open
    deal as read for a change (``ops.change_order(known=...)``; its row stays locked)."""

    open_ids: list[int]
    closed_ids: list[int]
    question: tuple[int, datetime, str] | None
    appointed: bool = False
    own_orders: dict[int, ops.OrderState] = field(default_factory=dict)


_DEAL_T = Deal.__table__  # type: ignore[attr-defined]
_QUESTION_T = PendingQuestion.__table__  # type: ignore[attr-defined]
_ROLE_T = LeaderRole.__table__  # type: ignore[attr-defined]
_ORDER_T = Order.__table__  # type: ignore[attr-defined]


def _row(kind: str, id_: Any, status: Any = None, payload: Any = None, at: Any = None,
         line_id: Any = None, item_id: Any = None, qty: Any = None, deal_id: Any = None) -> list[Any]:
    """One branch's columns: what the row is, then the columns of every kind (NULL if not
    this one's, cast, so that the first branch gives every column its type)."""
    def typed(value: Any, type_: Any) -> Any:
        return cast(null(), type_) if value is None else value
    return [literal(kind).label("kind"), id_.label("id"), typed(status, String()).label("status"),
            typed(payload, Text()).label("payload"), typed(at, AwareDateTime()).label("at"),
            typed(line_id, Integer()).label("line_id"), typed(item_id, Integer()).label("item_id"),
            typed(qty, Quantity()).label("qty"), typed(deal_id, Integer()).label("deal_id")]


def _room_state_query() -> Any:
    """One round trip instead of five: deals that are open or closed since ``since``, the
    member's question and leader role, and the member's own orders on the open deals, read
    for a change (``ops.orders_for_change``: locked until the commit)."""
    room: Any = bindparam("room_id")
    member_id: Any = bindparam("member_id")
    open_deals = core_select(_DEAL_T.c.id).where(_DEAL_T.c.room_id == room, _DEAL_T.c.status == "open")
    orders = ops.orders_for_change(member_id, _ORDER_T.c.deal_id.in_(open_deals.scalar_subquery()),
                                   func.coalesce(_ORDER_T.c.placed_for, "") == "").cte("own")
    return union_all(
        core_select(*_row("deal", _DEAL_T.c.id, _DEAL_T.c.status, at=_DEAL_T.c.closed_at))
        .where(_DEAL_T.c.room_id == room,
               or_(_DEAL_T.c.status == "open", _DEAL_T.c.closed_at >= bindparam("since"))),
        core_select(*_row("question", _QUESTION_T.c.id, payload=_QUESTION_T.c.payload,
                          at=_QUESTION_T.c.asked_at))
        .where(_QUESTION_T.c.room_id == room, _QUESTION_T.c.member_id == member_id),
        core_select(*_row("appointed", _ROLE_T.c.id))
        .where(_ROLE_T.c.room_id == room, _ROLE_T.c.member_id == member_id),
        core_select(*_row("order", orders.c.id, orders.c.status, orders.c.note, None,
                          orders.c.line_id, orders.c.item_id, orders.c.qty, orders.c.deal_id)))


_ROOM_STATE = Prepared(_room_state_query())


@dataclass(frozen=True)
class Speaker:
    """Who speaks in which room, for ``read_room_states``: the member's row id if this worker
    knows it (else it is looked up by platform id, and the row made if there is none), and
    whether to rename the member and note their presence in the room at once (``at_once``)."""

    room_id: int
    platform_id: str
    name: str
    member_id: int | None
    now: datetime
    at_once: bool = False


def _room_states_sql() -> Any:
    """PostgreSQL: ``read_room_state`` for several speakers at once, the members this worker
    does not know looked up by platform id on the way (a new one's row made, in the order
    given). Each speaker's rows carry its index ``i``; the columns are ``_row``'s. It reads
    what ``_room_state_query`` reads (a test holds the two equal), each speaker through a
    LATERAL lookup: the tables' indexes then serve it however stale the planner's row
    counts are.

    Only for the speakers marked ``at_once`` does it change what another message can see
    (as ``upsert_member`` with ``present_in`` does): for the others a known member keeps
    the name they had (``ON CONFLICT`` only returns the row) and no presence is noted, as
    until a speaker's message has its turn, the messages before it must see the room's
    members as they were. A new member's row is seen by nobody before their presence in a
    room is."""
    def name(table: Any) -> str:
        return f'"{table.name}"'
    member, presence = name(Member.__table__), name(RoomMember.__table__)  # type: ignore[attr-defined]
    deal, question, role = name(_DEAL_T), name(_QUESTION_T), name(_ROLE_T)
    order, line = name(_ORDER_T), name(OrderLine.__table__)  # type: ignore[attr-defined]
    sql = f"""
    WITH req AS (
        SELECT * FROM json_to_recordset(CAST(:speakers AS json)) AS r(
            i integer, room_id integer, platform_id text, name text, member_id integer,
            since timestamptz, at_once boolean)
    ), renaming AS (
        INSERT INTO {member} (platform_id, name)
        SELECT platform_id, name FROM req WHERE member_id IS NULL AND at_once ORDER BY i
        ON CONFLICT (platform_id) DO UPDATE SET name = excluded.name
        RETURNING id, platform_id, name
    ), keeping AS (
        INSERT INTO {member} (platform_id, name)
        SELECT platform_id, name FROM req WHERE member_id IS NULL AND NOT at_once ORDER BY i
        ON CONFLICT (platform_id) DO UPDATE SET name = {member}.name
        RETURNING id, platform_id, name
    ), m AS (
        SELECT * FROM renaming UNION ALL SELECT * FROM keeping
    ), who AS (
        SELECT req.i, req.room_id, coalesce(req.member_id, m.id) AS member_id, req.since,
               req.at_once, m.name
        FROM req LEFT JOIN m ON req.member_id IS NULL AND m.platform_id = req.platform_id
    ), p AS (
        INSERT INTO {presence} (room_id, member_id)
        SELECT room_id, member_id FROM who WHERE at_once
        ON CONFLICT (room_id, member_id) DO NOTHING
    ), own AS (
        SELECT who.i, o.* FROM who CROSS JOIN LATERAL (
            SELECT o.deal_id, o.id, o.status, o.note, l.id AS line_id, l.item_id, l.qty
            FROM {order} o LEFT JOIN {line} l ON l.order_id = o.id
            WHERE o.member_id = who.member_id AND coalesce(o.placed_for, '') = ''
                AND o.deal_id IN (
                    SELECT d.id FROM {deal} d WHERE d.room_id = who.room_id AND d.status = 'open')
            FOR UPDATE OF o) o
    )
    SELECT who.i, s.* FROM who CROSS JOIN LATERAL (
        SELECT 'member' AS kind, who.member_id AS id, CAST(NULL AS varchar) AS status,
               CAST(who.name AS text) AS payload, CAST(NULL AS timestamptz) AS at,
               CAST(NULL AS integer) AS line_id, CAST(NULL AS integer) AS item_id,
               CAST(NULL AS bigint) AS qty, CAST(NULL AS integer) AS deal_id
        UNION ALL
        SELECT 'deal', d.id, d.status, NULL, d.closed_at, NULL, NULL, NULL, NULL
        FROM {deal} d WHERE d.room_id = who.room_id
            AND (d.status = 'open' OR d.closed_at >= who.since)
        UNION ALL
        SELECT 'question', q.id, NULL, q.payload, q.asked_at, NULL, NULL, NULL, NULL
        FROM {question} q WHERE q.room_id = who.room_id AND q.member_id = who.member_id
        UNION ALL
        SELECT 'appointed', r.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM {role} r WHERE r.room_id = who.room_id AND r.member_id = who.member_id) s
    UNION ALL
    SELECT i, 'order', id, status, note, NULL, line_id, item_id, qty, deal_id FROM own
    """
    return text(sql).columns(
        column("i", Integer()), column("kind", String()), column("id", Integer()),
        column("status", String()), column("payload", Text()), column("at", AwareDateTime()),
        column("line_id", Integer()), column("item_id", Integer()), column("qty", Quantity()),
        column("deal_id", Integer()))


_ROOM_STATES = Prepared(_room_states_sql())


def read_room_state(session: Session, room_id: int, member_id: int, now: datetime) -> RoomState:
    """The room's open and recently closed deals, the member's pending question and role,
    and the member's own orders on the open deals (locked for a change)."""
    return _room_state(_ROOM_STATE.run(session, {
        "room_id": room_id, "member_id": member_id, "since": now - RECENTLY_CLOSED}).all())


def read_room_states(session: Session, speakers: Sequence[Speaker]
                     ) -> list[tuple[int, str | None, RoomState]]:
    """PostgreSQL: for each speaker, their member row id and the name the row has (where
    ``member_id`` is None: the row is looked up, or made), and ``read_room_state``, all in
    one statement; the caller notes the renames and presences of those not ``at_once``
    when each one's turn comes (``ops.defer_member_writes``)."""
    if not speakers:
        return []
    rows = _ROOM_STATES.run(session, {"speakers": json.dumps([
        {"i": i, "room_id": s.room_id, "platform_id": s.platform_id, "name": s.name,
         "member_id": s.member_id, "since": (s.now - RECENTLY_CLOSED).isoformat(),
         "at_once": s.at_once}
        for i, s in enumerate(speakers)], ensure_ascii=False)}).all()
    by_speaker: list[list[Any]] = [[] for _ in speakers]
    for row in rows:
        by_speaker[row.i].append(row)
    out = []
    for mine in by_speaker:
        member = next(row for row in mine if row.kind == "member")
        out.append((member.id, member.payload, _room_state(mine)))
    return out


def _room_state(rows: list[Any]) -> RoomState:
    deals = [row for row in rows if row.kind == "deal"]
    question = next(((row.id, row.at, row.payload) for row in rows if row.kind == "question"), None)
    open_ids = sorted(row.id for row in deals if row.status == "open")
    orders = ops.order_states([(row.deal_id, row.id, row.status, row.payload, row.line_id,
                                row.item_id, row.qty) for row in rows if row.kind == "order"])
    return RoomState(
        open_ids=open_ids,
        closed_ids=sorted((row.id for row in deals if row.status != "open"), reverse=True)[:3],
        question=question, appointed=any(row.kind == "appointed" for row in rows),
        own_orders={deal_id: orders.get(deal_id, ops.OrderState()) for deal_id in open_ids})


class DealCache:
    """Open deals of a room for the order path: the ids are read fresh every message (with
    ``read_room_state``), the rows come from memory. Fields a cached deal may have stale
    (stock, flags, deadline) are re-checked by the SQL that uses them, and a deal that closed
    or was cancelled is simply no longer among the ids."""

    def __init__(self, size: int = 2048) -> None:
        self._deals: dict[int, Deal] = {}
        self._size = size

    def clear(self) -> None:
        self._deals.clear()

    def deals(self, session: Session, ids: list[int]) -> list[Deal]:
        out = []
        for deal_id in ids:
            deal = self._deals.get(deal_id)
            if deal is None:
                deal = session.get(Deal, deal_id)
                assert deal is not None
                if len(self._deals) >= self._size:
                    self._deals.pop(next(iter(self._deals)))
                self._deals[deal_id] = deal
            out.append(deal)
        return out


@dataclass
class Turn:
    """One inbound message being handled inside its transaction."""

    session: Session
    settings: Settings
    msg: IncomingMessage
    room: Room | None
    member: Member
    text: str  # normalised reply (quote removed)
    raw: str  # the reply as written, for @mentions and names
    quote: Quote | None
    now: datetime
    record: ops.MessageRecord
    items: ItemCache
    deals: DealCache
    _leader: bool | None = None
    _state: RoomState | None = None
    _open: list[Deal] | None = None

    def room_state(self) -> RoomState:
        """The room's deals and the speaker's pending question (read once per turn: a handler
        that opens or closes a deal, or asks a question, must not rely on it afterwards)."""
        if self._state is None:
            self._state = (read_room_state(self.session, self.room.id or 0, self.member.id or 0,
                                           self.now)
                           if self.room else RoomState([], [], None))
        return self._state

    def open_deals(self) -> list[Deal]:
        """The room's open deals, oldest first."""
        if self._open is None:
            self._open = self.deals.deals(self.session, self.room_state().open_ids)
        return self._open

    def take_own_order(self, deal_id: int) -> ops.OrderState | None:
        """The speaker's own order on an open deal as the room's state read it (for
        ``ops.change_order(known=...)``), once: after a change it is no longer current."""
        if self._state is None:
            return None
        return self._state.own_orders.pop(deal_id, None)

    def take_question(self) -> tuple[datetime, str] | None:
        """Remove and return the speaker's pending question: (asked at, payload)."""
        question = self.room_state().question
        if question is None:
            return None
        ops.delete_pending_question(self.session, question[0])
        self._state = replace(self.room_state(), question=None)
        return question[1], question[2]

    def deal(self, deal_id: int) -> Deal | None:
        """An open deal of this room by id, else any deal by id."""
        if not 0 < deal_id <= MAX_DEAL_ID:
            return None
        return next((d for d in self.open_deals() if d.id == deal_id), None) or \
            self.session.get(Deal, deal_id)

    @property
    def is_leader(self) -> bool:
        """The room owner, a leader named in config.toml, or one appointed in the chat.

        Asked only when a leader command was recognised (permission is not parsing).
        """
        if self._leader is None:
            self._leader = bool(self.room is not None and (
                self.msg.sender_is_owner
                or self.msg.sender_name in self.settings.leaders.get(self.room.name, ())
                or self.room_state().appointed))
        return self._leader

    @property
    def room_id(self) -> str | None:
        return self.msg.room_id

    @property
    def plain(self) -> str:
        """The normalised reply without @mentions ("@团长 我要3袋" → "我要3袋")."""
        return strip_mentions(self.text)

    def reply(self, template: str, data: dict[str, Any], *, mentions: tuple[str, ...] = (),
              private: bool = False) -> Reply:
        """A reply in the same chat (or privately to the speaker)."""
        if self.msg.room_id and not private:
            return Reply(template, data, room_id=self.msg.room_id, room_name=self.msg.room_name,
                         mentions=mentions)
        return Reply(template, data, to_id=self.msg.sender_id, to_name=self.msg.sender_name)

    def ack(self, kind: Any, data: dict[str, Any], progress: DealProgress | None = None) -> Ack:
        """An acknowledgement for the outbox to coalesce."""
        data = {"member": self.member.name, **data}
        if self.msg.room_id:
            return Ack(kind, self.msg.room_id, self.msg.room_name or "", data, progress)
        return Ack(kind, "", "", data, progress, to_id=self.msg.sender_id,
                   to_name=self.msg.sender_name)


@dataclass
class Outcome:
    """What a handler produced: replies to send now, acks to coalesce, deals to schedule."""

    replies: list[Reply] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    schedule: list[int] = field(default_factory=list)
    unschedule: list[int] = field(default_factory=list)


Filter = Callable[[Turn], Any]
Handler = Callable[[Turn, Any], Outcome]


class Router(Generic[T]):
    """Handlers of one module, each behind a filter that returns parsed data or None."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: list[tuple[str, Filter, Handler]] = []

    def route(self, filter_: Filter) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append((handler.__name__, filter_, handler))
            return handler

        return register


# --- views for templates ----------------------------------------------------------------------

def duration_text(delta: timedelta) -> str:
    """A short Chinese duration: "1小时", "35小时20分钟", "8分钟"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 2:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    hours += days * 24
    if hours and mins:
        return f"{hours}小时{mins}分钟"
    if hours:
        return f"{hours}小时"
    return f"{mins}分钟"


def deal_view(session: Session, deal: Deal, settings: Settings) -> dict[str, Any]:
    """The data the templates show of a deal (times in the configured zone)."""
    items = ops.deal_items(session, deal.id or 0)
    tz = settings.tz
    return {
        "id": deal.id, "title": deal.title, "status": deal.status,
        "goods": [{"no": it.no, "name": it.name, "price": it.price, "unit": it.unit,
                   "stock": it.stock} for it in items],
        "unit": (items[0].unit if items else None) or "份",
        "threshold": deal.threshold, "threshold_unit": deal.threshold_unit,
        "stock": deal.stock, "limit_per_member": deal.limit_per_member,
        "deadline": format_time(deal.deadline.astimezone(tz)) if deal.deadline else None,
        "delivery": deal.delivery_text, "pickup": deal.pickup,
    }


def progress_snapshot(deal: Deal, p: ops.Progress) -> DealProgress:
    """The deal's progress, as the ack shows it."""
    return DealProgress(deal.id or 0, deal.title, p.counted, p.threshold, p.unit, p.stock_left)


def lines_text(lines: tuple[tuple[Any, Decimal], ...], single: bool) -> str:
    """"3箱" for a single-item deal, "富士苹果2箱 赣南脐橙1箱" otherwise."""
    return " ".join(("" if single else it.name) + fmt_qty(q) + (it.unit or "") for it, q in lines)
