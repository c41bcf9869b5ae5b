"""Leader commands: 开团, 截团, 取消团, 延期, 改价, 补货, 到货, 汇总, 已付, 核销, 设置/取消团长."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

from handlers.announce import batched_replies, close_announcement
from handlers.common import (
    CLOSED_TEXT,
    MAX_DEAL_ID,
    STATUS_TEXT,
    Outcome,
    Router,
    Turn,
    catalog_item,
    deal_view,
    lines_text,
)
from handlers.parsing.commands import LeaderCommand, parse_leader_command
from handlers.parsing.deal import DealParseError, DealSpec, parse_deal_command
from handlers.parsing.numbers import NUMERAL, RangeError, parse_numeral
from handlers.parsing.order import find_items
from handlers.parsing.text import in_written_script, normalize
from handlers.parsing.times import format_time, parse_time
from models import ops
from models.tables import Deal, Item

router: Router[LeaderCommand] = Router("leader")

_ACTIONS = {
    "open": "开团", "close": "截团", "cancel": "取消团", "extend": "延期", "price": "改价",
    "restock": "补货", "arrive": "发到货通知", "summary": "看汇总", "paid": "标记付款",
    "picked": "核销", "appoint": "设置团长", "revoke": "取消团长",
}


def _command(turn: Turn) -> LeaderCommand | None:
    if turn.room is None:
        return None
    return parse_leader_command(turn.text, turn.raw)


def _notice(turn: Turn, text: str, *, mention: bool = False) -> Outcome:
    return Outcome(replies=[turn.reply("notice", {"text": text,
                                                  "mention": turn.member.name if mention else None})])


def _target_deal(turn: Turn, deal_no: int | None, *, open_only: bool,
                 prefer_closed: bool = False) -> Deal | Outcome:
    """The deal a command is about: #N, else the room's only open deal, else ask."""
    assert turn.room is not None
    if deal_no is not None:
        deal = turn.session.get(Deal, deal_no) if 0 < deal_no <= MAX_DEAL_ID else None
        if deal is None or deal.room_id != turn.room.id:
            return _notice(turn, f"本群没有 #{deal_no} 这个团")
        if open_only and deal.status != "open":
            return _notice(turn, f"#{deal.id} {CLOSED_TEXT.get(deal.status, deal.status)}")
        return deal
    opened = ops.open_deals(turn.session, turn.room)
    if prefer_closed or (not opened and not open_only):
        recent = [d for d in ops.recent_deals(turn.session, turn.room) if d.status == "succeeded"]
        if recent and (prefer_closed or not opened):
            return recent[0]
    if len(opened) == 1:
        return opened[0]
    if not opened:
        if not open_only:
            recent = ops.recent_deals(turn.session, turn.room, 1)
            if recent:
                return recent[0]
        return _notice(turn, "现在没有进行中的团")
    return Outcome(replies=[turn.reply("ask_deal", {"mention": None, "deals": [
        {"id": d.id, "title": d.title} for d in opened]})])


@router.route(_command)
def leader_command(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """Check permission, then run the command."""
    if not turn.is_leader:
        return Outcome(replies=[turn.reply("not_leader", {"member": turn.member.name,
                                                          "action": _ACTIONS[cmd.kind]},
                                           mentions=(turn.member.name,))])
    return _HANDLERS[cmd.kind](turn, cmd)


def _as_written(spec: DealSpec, raw: str) -> DealSpec:
    """The names and places of a deal in the leader's own script (繁體 stays 繁體)."""
    def w(text: str | None) -> str | None:
        return in_written_script(text, raw) if text else text

    return replace(spec, title=w(spec.title) or spec.title, pickup=w(spec.pickup),
                   delivery_text=w(spec.delivery_text),
                   items=tuple(replace(it, name=w(it.name) or it.name) for it in spec.items))


def open_deal(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """开团: parse, refuse a past deadline, create the deal and post its card."""
    assert turn.room is not None
    try:
        spec = parse_deal_command(normalize(turn.raw, lower=False), turn.now)
    except DealParseError as exc:
        return Outcome(replies=[turn.reply("deal_error", {"problem": exc.problem})])
    spec = _as_written(spec, turn.raw)
    if spec.deadline is not None and spec.deadline.at <= turn.now:
        return Outcome(replies=[turn.reply("deal_error", {
            "problem": f"截团时间 {format_time(spec.deadline.at)} 已经过了"})])
    deal = Deal(
        room_id=turn.room.id or 0, leader_id=turn.member.id or 0, title=spec.title,
        threshold=spec.threshold, threshold_unit=spec.threshold_unit, stock=spec.stock,
        limit_per_member=spec.limit_per_member,
        deadline=spec.deadline.at if spec.deadline else None,
        delivery_text=spec.delivery_text,
        delivery_at=spec.delivery.at if spec.delivery else None,
        pickup=spec.pickup, created_at=turn.now, source_message_id=turn.msg.id,
    )
    turn.session.add(deal)
    turn.session.flush()
    for it in spec.items:
        turn.session.add(Item(deal_id=deal.id or 0, no=it.no, name=it.name, price=it.price,
                              unit=it.unit, stock=it.stock))
    turn.session.flush()
    turn.record.deal_id = deal.id
    multi = len(ops.open_deals(turn.session, turn.room)) > 1
    view = deal_view(turn.session, deal, turn.settings)
    return Outcome(replies=[turn.reply("deal_card", {"d": view, "multi": multi})],
                   schedule=[deal.id or 0])


def close_now(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """截团 #N: close at once; the result depends on the threshold."""
    deal = _target_deal(turn, cmd.deal_no, open_only=True)
    if isinstance(deal, Outcome):
        return deal
    status = ops.close_deal(turn.session, deal, turn.now)
    if status is None:
        return _notice(turn, f"#{deal.id} 已经截团了")
    return Outcome(replies=close_announcement(turn.session, deal, status, turn.settings,
                                              turn.msg.room_id or "", turn.msg.room_name or ""),
                   unschedule=[deal.id or 0])


def cancel(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """取消团 #N [原因]: all orders void, buyers told."""
    deal = _target_deal(turn, cmd.deal_no, open_only=True)
    if isinstance(deal, Outcome):
        return deal
    reason = cmd.args or None
    if not ops.cancel_deal(turn.session, deal, turn.now, reason):
        return _notice(turn, f"#{deal.id} 已经结束了")
    names = tuple(dict.fromkeys(b.member.name for b in ops.buyers(turn.session, deal.id or 0)))
    return Outcome(replies=batched_replies(turn.settings, "deal_cancelled", {
        "d": deal_view(turn.session, deal, turn.settings), "reason": reason},
        turn.msg.room_id or "", turn.msg.room_name or "", names), unschedule=[deal.id or 0])


def extend(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """延期 #N 到 周五20点: move the deadline (a past time is refused)."""
    deal = _target_deal(turn, cmd.deal_no, open_only=True)
    if isinstance(deal, Outcome):
        return deal
    text = re.sub(r"^(到|至|为|改到|改为)", "", cmd.args).strip()
    when = parse_time(text, turn.now)
    if when is None:
        return _notice(turn, f"新的截团时间「{text}」没看懂，例：延期 #{deal.id} 到 周五20点")
    if when.at <= turn.now:
        return _notice(turn, f"{format_time(when.at)} 已经过了，请给一个以后的时间")
    deal.deadline = when.at
    deal.reminded = False
    return Outcome(replies=[turn.reply("deal_updated", {
        "what": "deadline", "d": deal_view(turn.session, deal, turn.settings)})],
        schedule=[deal.id or 0])


def _pick_item(turn: Turn, deal: Deal, text: str) -> tuple[Item | None, str]:
    items = ops.deal_items(turn.session, deal.id or 0)
    if len(items) == 1:
        return items[0], text
    m = re.match(r"^\s*(\d+)\s*号?\s+", text)
    if m and 1 <= int(m.group(1)) <= len(items):
        return items[int(m.group(1)) - 1], text[m.end():]
    catalog = [catalog_item(it, len(items)) for it in items]
    found = find_items(text, catalog)
    if found:
        start, end, cat = found[0]
        return items[cat.item_no - 1], text[:start] + text[end:]
    return None, text


def _amount(text: str) -> Decimal | None:
    m = re.search(NUMERAL, text)
    if not m:
        return None
    try:
        return parse_numeral(m.group(0))
    except (ValueError, RangeError):
        return None


def change_price(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """改价 #N [商品] 35元."""
    deal = _target_deal(turn, cmd.deal_no, open_only=False)
    if isinstance(deal, Outcome):
        return deal
    item, rest = _pick_item(turn, deal, cmd.args)
    price = _amount(rest)
    if item is None or price is None or price < 0:
        return _notice(turn, f"改价没看懂，例：改价 #{deal.id} 1号 35元")
    item.price = price
    return Outcome(replies=[turn.reply("deal_updated", {
        "what": "price", "d": deal_view(turn.session, deal, turn.settings),
        "item": {"name": item.name, "price": price, "unit": item.unit}})])


def restock(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """补货 #N [商品] 20箱: more stock for the item (or the deal)."""
    deal = _target_deal(turn, cmd.deal_no, open_only=True)
    if isinstance(deal, Outcome):
        return deal
    item, rest = _pick_item(turn, deal, cmd.args)
    added = _amount(rest)
    if item is None or added is None or added <= 0:
        return _notice(turn, f"补货没看懂，例：补货 #{deal.id} 20{(item.unit if item else '') or '份'}")
    if item.stock is not None:
        item.stock += added
    elif deal.stock is not None:
        deal.stock += added
    else:
        return _notice(turn, f"#{deal.id} 没有限量，不用补货")
    deal.soldout_announced = False
    turn.session.flush()
    left = ops.progress(turn.session, deal).stock_left
    if item.stock is not None:
        ordered = next(t.qty for t in ops.item_totals(turn.session, deal.id or 0) if t.item.id == item.id)
        left = item.stock - ordered
    return Outcome(replies=[turn.reply("deal_updated", {
        "what": "stock", "d": deal_view(turn.session, deal, turn.settings),
        "item": {"name": item.name, "unit": item.unit}, "added": added, "left": left})])


def arrive(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """到货 #N [取货说明]: @-mention every buyer, in batches."""
    deal = _target_deal(turn, cmd.deal_no, open_only=False, prefer_closed=True)
    if isinstance(deal, Outcome):
        return deal
    names = tuple(dict.fromkeys(b.member.name for b in ops.buyers(turn.session, deal.id or 0)))
    return Outcome(replies=batched_replies(turn.settings, "arrival", {
        "d": deal_view(turn.session, deal, turn.settings), "instructions": cmd.args or None},
        turn.msg.room_id or "", turn.msg.room_name or "", names))


def summary(turn: Turn, cmd: LeaderCommand) -> Outcome:
    """汇总 #N: totals per item and the buyer list."""
    deal = _target_deal(turn, cmd.deal_no, open_only=False)
    if isinstance(deal, Outcome):
        return deal
    totals = ops.item_totals(turn.session, deal.id or 0)
    single = len(totals) == 1
    buyer_list = ops.buyers(turn.session, deal.id or 0)
    return Outcome(replies=[turn.reply("summary", {
        "d": deal_view(turn.session, deal, turn.settings),
        "status_text": STATUS_TEXT.get(deal.status, deal.status),
        "totals": [{"name": t.item.name, "qty": t.qty, "unit": t.item.unit, "price": t.item.price}
                   for t in totals],
        "buyers": [{"member": b.member.name, "placed_for": b.order.placed_for,
                    "lines": lines_text(b.lines, single), "note": b.order.note,
                    "paid": b.order.paid, "picked_up": b.order.picked_up} for b in buyer_list],
        "amount": sum((b.amount for b in buyer_list), Decimal(0)),
    })])


def _mark(turn: Turn, cmd: LeaderCommand, what: str) -> Outcome:
    assert turn.room is not None
    deal = _target_deal(turn, cmd.deal_no, open_only=False, prefer_closed=True)
    if isinstance(deal, Outcome):
        return deal
    done, missing = [], []
    for name in cmd.mentions:
        member = ops.find_member_in_room(turn.session, turn.room, name)
        if member and ops.set_paid(turn.session, deal, member,
                                   paid=True if what == "paid" else None,
                                   picked_up=True if what == "picked" else None):
            done.append(name)
        else:
            missing.append(name)
    if missing and not done:
        return _notice(turn, f"#{deal.id} 里没有 {'、'.join(missing)} 的订单")
    return Outcome(replies=[turn.reply("marked", {"what": what, "names": done,
                                                  "d": {"id": deal.id}})])


def _roles(turn: Turn, cmd: LeaderCommand, grant: bool) -> Outcome:
    assert turn.room is not None
    if not cmd.mentions:
        return _notice(turn, "请 @ 要设置的人，例：设置团长 @张姐")
    names = []
    ids = {name: platform_id for platform_id, name in turn.msg.mentioned}
    for name in cmd.mentions:
        member = ops.find_member_in_room(turn.session, turn.room, name)
        if member is None:
            # Not seen yet: the transport told us the mentioned person's id.
            member = ops.upsert_member(turn.session, ids.get(name, f"name:{name}"), name)
            ops.note_presence(turn.session, turn.room, member)
        ops.set_leader(turn.session, turn.room, member, grant)
        names.append(name)
    return Outcome(replies=[turn.reply("leader_changed", {"granted": grant, "names": names})])


_HANDLERS = {
    "open": open_deal, "close": close_now, "cancel": cancel, "extend": extend,
    "price": change_price, "restock": restock, "arrive": arrive, "summary": summary,
    "paid": lambda t, c: _mark(t, c, "paid"), "picked": lambda t, c: _mark(t, c, "picked"),
    "appoint": lambda t, c: _roles(t, c, True), "revoke": lambda t, c: _roles(t, c, False),
}
