"""我的订单 / 查单 / 进度 / 还差几箱, in the group or privately across the member's groups."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from handlers.common import STATUS_TEXT, Outcome, Router, Turn, duration_text, lines_text
from handlers.parsing.order import StatusQuery, classify_status, is_help_request
from models import ops
from models.tables import Deal, Room

router: Router[StatusQuery | bool] = Router("status")
RECENT = timedelta(days=7)


def _query(turn: Turn) -> StatusQuery | None:
    return classify_status(turn.plain)


def _help(turn: Turn) -> bool | None:
    return True if is_help_request(turn.plain) else None


@router.route(_help)
def help_(turn: Turn, _: bool) -> Outcome:
    """帮助 / 怎么用: the commands for the speaker's role, in the chat it was asked in."""
    return Outcome(replies=[turn.reply("help", {"bot_name": turn.settings.bot_name,
                                                "leader": turn.room is not None and turn.is_leader})])


def _rooms(turn: Turn) -> list[Room]:
    if turn.room is not None:
        return [turn.room]
    return ops.member_rooms(turn.session, turn.member)


@router.route(_query)
def status(turn: Turn, query: StatusQuery) -> Outcome:
    """Answer a status query in the chat it came from."""
    private = turn.room is None
    rooms = _rooms(turn)
    if query.kind == "mine":
        return Outcome(replies=[turn.reply("my_orders", _my_orders(turn, rooms, query, private),
                                           mentions=() if private else (turn.member.name,))])
    deals: list[Deal] = []
    for room in rooms:
        deals += ops.open_deals(turn.session, room)
    if query.deal_no is not None:
        deals = [d for d in deals if d.id == query.deal_no]
    return Outcome(replies=[turn.reply("progress", {"deals": [
        {"id": d.id, "title": d.title, "p": ops.progress(turn.session, d),
         "left": duration_text(d.deadline - turn.now) if d.deadline else None}
        for d in deals]})])


def _my_orders(turn: Turn, rooms: list[Room], query: StatusQuery, private: bool) -> dict:
    shown = []
    total = Decimal(0)
    for room in rooms:
        for deal in ops.recent_deals(turn.session, room, 20):
            if query.deal_no is not None and deal.id != query.deal_no:
                continue
            if deal.status != "open" and (deal.closed_at is None or turn.now - deal.closed_at > RECENT):
                continue
            single = len(ops.deal_items(turn.session, deal.id or 0)) == 1
            mine = [b for b in ops.buyers(turn.session, deal.id or 0) if b.member.id == turn.member.id]
            if not mine:
                continue
            lines = []
            amount = Decimal(0)
            for b in mine:
                text = lines_text(b.lines, single)
                lines.append(f"{text}(代{b.order.placed_for})" if b.order.placed_for else text)
                amount += b.amount
            live = deal.status in ("open", "succeeded")
            if live:
                total += amount
            shown.append({"id": deal.id, "title": deal.title, "room": room.name,
                          "lines": "、".join(lines), "amount": amount,
                          "status_text": None if deal.status == "open" else STATUS_TEXT[deal.status]})
    shown.sort(key=lambda d: int(d["id"] or 0))
    return {"member": turn.member.name, "deals": shown, "total": total, "private": private}
