"""What every handler shares: the turn being handled, its outcome, routers and deal views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from bot.config import Settings
from bot.types import Ack, DealProgress, IncomingMessage, Reply
from handlers.parsing.times import format_time
from handlers.parsing.wechat import Quote
from models import ops
from models.tables import Deal, Member, ProcessedMessage, Room

T = TypeVar("T")

STATUS_TEXT = {"open": "进行中", "succeeded": "已成团", "failed": "未成团",
               "cancelled": "已取消"}
CLOSED_TEXT = {"succeeded": "已截团", "failed": "已截团（未成团）", "cancelled": "已取消"}


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
    is_leader: bool
    record: ProcessedMessage

    @property
    def room_id(self) -> str | None:
        return self.msg.room_id

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


def progress_snapshot(session: Session, deal: Deal) -> DealProgress:
    """The deal's progress now, as the ack shows it."""
    p = ops.progress(session, deal)
    return DealProgress(deal.id or 0, deal.title, p.counted, p.threshold, p.unit, p.stock_left)


def lines_text(lines: tuple[tuple[Any, Decimal], ...], single: bool) -> str:
    """"3箱" for a single-item deal, "富士苹果2箱 赣南脐橙1箱" otherwise."""
    from bot.render import fmt_qty

    return " ".join(("" if single else it.name) + fmt_qty(q) + (it.unit or "") for it, q in lines)
