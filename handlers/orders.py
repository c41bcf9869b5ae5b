"""Member orders: plain replies, quote-replies, 接龙 lists, changes, cancels and clarifications."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import col, select

from handlers.common import CLOSED_TEXT, Outcome, Router, Turn, catalog_item, progress_snapshot
from handlers.parsing.order import (
    Ambiguous,
    CatalogItem,
    OrderIntent,
    fill_range,
    find_items,
    is_agreement,
    is_question,
    is_same_as,
    parse_member_message,
)
from handlers.parsing.text import normalize
from handlers.parsing.wechat import Jielong, parse_jielong
from models import ops
from models.tables import Deal, Item, JielongLine, Member, PendingQuestion, ProcessedMessage

router: Router[Any] = Router("orders")
ONE = Decimal(1)
ZERO = Decimal(0)
# An answer to "要哪一个？": "#2", "2号", "第二个".
_ANSWER_NO = re.compile(
    r"^(?:#\s*(?P<deal>\d+)|第?\s*(?P<item>\d+|[一二三四五六七八九十])\s*(?:号|个|款|种)?)$"
)


def catalog_of(turn: Turn, deals: list[Deal]) -> list[CatalogItem]:
    """Orderable items of the given deals."""
    out: list[CatalogItem] = []
    for deal in deals:
        items = turn.items.get(turn.session, deal.id or 0)
        out += [catalog_item(it, len(items)) for it in items]
    return out


def _item(turn: Turn, cat: CatalogItem) -> Item:
    return next(it for it in turn.items.get(turn.session, cat.deal_id) if it.no == cat.item_no)


# --- jielong ----------------------------------------------------------------------------------

def _jielong(turn: Turn) -> Jielong | None:
    return parse_jielong(turn.text) if turn.room is not None else None


@router.route(_jielong)
def jielong(turn: Turn, jl: Jielong) -> Outcome:
    """Count only the lines of a 接龙 list that are new, or changed by their own author."""
    assert turn.room is not None
    deals = turn.open_deals()
    catalog = catalog_of(turn, deals)
    if len(deals) > 1:
        hits = {c.deal_id for _, _, c in find_items(jl.header, catalog)}
        deals = [d for d in deals if d.id in hits] if len(hits) == 1 else deals
    if not deals:
        return Outcome()
    if len(deals) > 1:
        return Outcome(acks=[turn.ack("question", {"question": "这个接龙是哪个团的？请在第一行写上商品名"})])
    deal = deals[0]
    cat = [c for c in catalog if c.deal_id == deal.id]
    seen = turn.session.exec(select(JielongLine).where(JielongLine.deal_id == deal.id)).all()
    by_no: dict[int, list[JielongLine]] = {}
    for row in seen:
        by_no.setdefault(row.no, []).append(row)
    known_texts: dict[str, int] = {}  # line text -> who added it first
    for row in seen:
        known_texts.setdefault(row.text, row.author_id)
    own_name = normalize(turn.member.name)
    outcome = Outcome()
    # A number written twice in one list means its last version.
    latest = {entry.no: entry for entry in jl.entries}
    for entry in latest.values():
        rows = by_no.get(entry.no, [])
        old = [row for row in rows if row.author_id == turn.member.id]
        if old:
            if old[0].text == entry.text:
                continue  # the sender's own line, unchanged
        elif rows and not (own_name and entry.text.startswith(own_name)):
            continue  # someone else's line: nobody's message changes another member's order
        elif entry.text in known_texts:
            # A line seen before under another number (the list was renumbered): not counted
            # again, but remembered under this number too, so that a re-post still knows it
            # when this very list changed the line it was first seen as.
            marker = JielongLine(deal_id=deal.id or 0, no=entry.no, text=entry.text,
                                 author_id=known_texts[entry.text], qty=ZERO)
            by_no[entry.no] = [*rows, marker]
            turn.session.add(marker)
            continue
        wanted = _jielong_entry(turn, jl, entry.text, own_name, cat)
        before = {row.item_id: row.qty for row in old if row.item_id is not None}  # (markers: none)
        results: list[ops.OrderChange | ops.OrderRefusal] = []
        counted = dict(before)  # what this line stands for once applied (refusals keep before)
        for item_id in dict.fromkeys([*before, *wanted]):
            delta = wanted.get(item_id, ZERO) - before.get(item_id, ZERO)
            if delta == 0:
                continue
            item = next(it for it in turn.items.get(turn.session, deal.id or 0) if it.id == item_id)
            result = ops.change_order(
                turn.session, deal, item, turn.member, abs(delta), "add" if delta > 0 else "sub",
                turn.now, note=None if old else _entry_note(entry.text, own_name, cat),
                max_qty=Decimal(turn.settings.max_qty_per_line))
            if isinstance(result, ops.OrderChange):
                counted[item_id] = wanted.get(item_id, ZERO)
            results.append(result)
        # The line is seen now, refused or not: re-posting the list must not try it again.
        counted = counted or dict.fromkeys(wanted, ZERO)
        for row in old:
            turn.session.delete(row)
        mine = [JielongLine(deal_id=deal.id or 0, no=entry.no, text=entry.text,
                            author_id=turn.member.id or 0, item_id=item_id, qty=qty)
                for item_id, qty in counted.items()]
        by_no[entry.no] = [row for row in rows if row not in old] + mine
        turn.session.add_all(mine)
        turn.session.flush()  # a later line with the same number may replace these rows
        known_texts.setdefault(entry.text, turn.member.id or 0)
        _collect(turn, outcome, deal, results)
    turn.record.deal_id = deal.id
    return outcome


# What may follow a member's name at the start of their 接龙 line for it to be just the
# name: nothing, a separator, or the quantity ("阿珠 2袋", "阿珠两袋", "阿珠：要一袋").
# "阿珠妈 两袋" is a different name, and stays whole (in the note).
_AFTER_NAME = re.compile(r"$|[\s\d,，.。:：、;；()（）\-—~]|[一二两三四五六七八九十半来要订买]")


def _entry_text(text: str, own_name: str) -> str:
    if own_name and text.startswith(own_name) and _AFTER_NAME.match(text, len(own_name)):
        return text[len(own_name):].strip()
    return text


def _jielong_entry(turn: Turn, jl: Jielong, text: str, own_name: str,
                   cat: list[CatalogItem]) -> dict[int, Decimal]:
    """Item id -> units a 接龙 line asks for; a line with no number means 1."""
    body = _entry_text(text, own_name)
    intent = parse_member_message(body, cat) if body else None
    lines = intent.lines if isinstance(intent, OrderIntent) and intent.kind == "order" else ()
    items = turn.items.get(turn.session, cat[0].deal_id)
    wanted: dict[int, Decimal] = {}
    for ln in lines or (None,):
        target = ln.item if ln is not None else None
        if target is None and ln is not None and ln.item_no is not None:
            target = next((c for c in cat if c.item_no == ln.item_no), None)
        if target is None:
            # A line that names no item orders the deal's only item, or the one in the header.
            in_header = [c for _, _, c in find_items(jl.header, cat)]
            target = cat[0] if len(cat) == 1 or not in_header else in_header[0]
        qty = ln.qty if ln is not None and ln.qty is not None else _bare_number(body) or ONE
        item_id = next(it.id for it in items if it.no == target.item_no) or 0
        wanted[item_id] = wanted.get(item_id, ZERO) + qty
    return wanted


def _bare_number(text: str) -> Decimal | None:
    """In a 接龙 line, a number standing alone at its end is the quantity ("小b 2")."""
    m = re.search(r"(?:^|\s)(\d{1,3}(?:\.\d+)?)$", text)
    return Decimal(m.group(1)) if m and Decimal(m.group(1)) > 0 else None


def _entry_note(text: str, own_name: str, cat: list[CatalogItem]) -> str | None:
    """The note of a 接龙 line: its text less the sender's name and the quantity."""
    body = _entry_text(text, own_name)
    intent = parse_member_message(body, cat) if body else None
    if isinstance(intent, OrderIntent):
        return intent.note
    return body or None


# --- plain member messages ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Scope:
    """Where a member message can apply: the catalog, narrowed by a quote or a question."""

    catalog: list[CatalogItem]
    quoted: bool = False


def _member_message(turn: Turn) -> bool | None:
    return True if turn.room is not None and turn.plain else None


@router.route(_member_message)
def member_message(turn: Turn, _: bool) -> Outcome:
    """Orders, changes and cancels in plain words, quote-replies, and answers to questions."""
    assert turn.room is not None
    catalog = catalog_of(turn, turn.open_deals())
    pending = turn.take_question()
    if pending is not None:
        asked_at, payload = pending
        if turn.now - asked_at <= timedelta(minutes=turn.settings.clarify_timeout_minutes):
            answered = _answer(turn, json.loads(payload), catalog)
            if answered is not None:
                return answered
    scope = _Scope(catalog)
    if turn.quote is not None:
        quoted = normalize(turn.quote.text)
        if is_agreement(turn.plain) and is_question(quoted):
            return Outcome()  # "+1" under a question agrees with the question
        narrowed = _quoted_scope(turn, catalog) or _quoted_members_item(turn, catalog)
        if narrowed is not None:
            scope = _Scope(narrowed, quoted=True)
        if is_same_as(turn.plain) and not is_question(quoted):
            # "我也是" under「阿琴：牛奶一箱」: the quoted order, for the speaker.
            return _apply_text(turn, quoted, scope)
    if not catalog:
        return _closed_refusal(turn)
    return _apply_text(turn, turn.plain, scope)


def _closed_ack(turn: Turn, deal: Deal) -> Outcome:
    """"#3 已截团": the order came too late for this deal."""
    return Outcome(acks=[turn.ack("refused", {
        "reason": "closed", "deal_id": deal.id, "title": deal.title,
        "status_text": CLOSED_TEXT.get(deal.status, deal.status)})])


def _closed_refusal(turn: Turn) -> Outcome:
    """An order sent after every deal of the room closed: say so, with the deal number."""
    closed = turn.room_state().closed_ids
    deal = turn.deal(closed[0]) if closed else None
    if deal is None:
        return Outcome()
    intent = parse_member_message(turn.plain, catalog_of(turn, [deal]))
    if not isinstance(intent, OrderIntent) or (intent.kind == "cancel" and deal.status == "cancelled"):
        return Outcome()
    return _closed_ack(turn, deal)


def _quoted_scope(turn: Turn, catalog: list[CatalogItem]) -> list[CatalogItem] | None:
    """Narrow the catalog to the deal (and item) of the quoted message."""
    assert turn.quote is not None
    assert turn.room is not None
    quoted = normalize(turn.quote.text)
    ops.write_deferred(turn.session)  # the quoted message may be one of this batch
    rows = turn.session.exec(
        select(ProcessedMessage).where(ProcessedMessage.room_id == turn.room.id,
                                       ProcessedMessage.sender_name == turn.quote.sender,
                                       col(ProcessedMessage.deal_id).is_not(None))
        .order_by(col(ProcessedMessage.received_at).desc()).limit(50)).all()
    for row in rows:
        body = row.body
        if body == quoted or (len(quoted) >= 8 and (body.startswith(quoted.rstrip(".…")) or
                                                     quoted.startswith(body))):
            narrowed = [c for c in catalog if c.deal_id == row.deal_id and
                        (row.item_no is None or c.item_no == row.item_no)]
            if narrowed:
                return narrowed
            return [c for c in catalog if c.deal_id == row.deal_id] or None
    m = re.search(r"#\s*(\d+)", quoted)
    if m:
        narrowed = [c for c in catalog if c.deal_id == int(m.group(1))]
        if narrowed:
            return narrowed
    hits = find_items(quoted, catalog)
    if hits:
        deal_ids = {c.deal_id for _, _, c in hits}
        if len(deal_ids) == 1:
            items = {c for _, _, c in hits}
            return list(items) if len(items) == 1 else [c for c in catalog if c.deal_id in deal_ids]
    return None


def _quoted_members_item(turn: Turn, catalog: list[CatalogItem]) -> list[CatalogItem] | None:
    """The item the quoted member has ordered, if exactly one of the open deals' items: their
    message may not name it ("面包要两袋" for the 吐司, settled by a question)."""
    assert turn.quote is not None
    assert turn.room is not None
    member = ops.find_member_in_room(turn.session, turn.room, turn.quote.sender)
    if member is None:
        return None
    items = [c for deal in turn.open_deals()
             for c in _my_items(turn, deal, [c for c in catalog if c.deal_id == deal.id], member)]
    return items if len(items) == 1 else None


def _answer(turn: Turn, payload: dict[str, Any], catalog: list[CatalogItem]) -> Outcome | None:
    """Complete a pending order with the member's answer ("樱桃", "2号", "#1")."""
    candidates = [c for c in catalog if c.deal_id in payload["deal_ids"]]
    if not candidates:
        return None
    if payload.get("range"):
        # "虾来两三盒" was asked about; "那就三盒吧" gives the number.
        filled = fill_range(payload["text"], turn.plain)
        return _apply_text(turn, filled, _Scope(candidates)) if filled else None
    own = parse_member_message(turn.plain, candidates)
    if isinstance(own, OrderIntent) and any(ln.qty is not None for ln in own.lines):
        return None  # a complete order of its own; handle it as such
    chosen: list[CatalogItem] = []
    text = turn.plain
    m = _ANSWER_NO.match(text)
    if m and m.group("deal"):
        chosen = [c for c in candidates if c.deal_id == int(m.group("deal"))]
    elif m and m.group("item"):
        from handlers.parsing.numbers import parse_numeral

        no = int(parse_numeral(m.group("item")))
        deal_ids = {c.deal_id for c in candidates}
        if len(deal_ids) == 1:
            chosen = [c for c in candidates if c.item_no == no]
        else:
            chosen = [c for c in candidates if c.deal_id == no]
    else:
        if len(text) > 20:
            return None
        chosen = [c for _, _, c in find_items(text, candidates)]
    if not chosen:
        return None
    deal_ids = {c.deal_id for c in chosen}
    if len(deal_ids) != 1:
        return None
    scope = chosen if len(chosen) == 1 else [c for c in candidates if c.deal_id in deal_ids]
    return _apply_text(turn, payload["text"], _Scope(scope, quoted=True))


def _ask(turn: Turn, text: str, deal_ids: list[int], question: str, *,
         range_: bool = False) -> Outcome:
    """Ask, and remember the order so that the member's next message can complete it."""
    assert turn.room is not None
    payload = {"text": text, "deal_ids": deal_ids, "range": range_}
    turn.session.add(PendingQuestion(room_id=turn.room.id or 0, member_id=turn.member.id or 0,
                                     asked_at=turn.now,
                                     payload=json.dumps(payload, ensure_ascii=False)))
    return Outcome(acks=[turn.ack("question", {"question": question})])


def _apply_text(turn: Turn, text: str, scope: _Scope) -> Outcome:
    """Parse the text against the scope's catalog and apply what it asks for."""
    catalog = scope.catalog
    if scope.quoted and len(catalog) == 1:
        # A quote (or an answer) pinned one item: the order means that item.
        catalog = [replace(catalog[0], items_in_deal=1)]
    intent = parse_member_message(text, catalog)
    if intent is None:
        return Outcome()
    if isinstance(intent, OrderIntent) and not intent.explicit and turn.is_leader:
        return Outcome()  # "68一只", "今天就8斤": a leader describing the deal, not ordering
    if (isinstance(intent, OrderIntent) and (intent.kind != "order" or intent.more)
            and _about_another_members_order(turn, text)):
        return Outcome()  # "小魏那单改成5箱": nobody's message changes another member's order
    if isinstance(intent, Ambiguous):
        return _ask(turn, text, list(dict.fromkeys(c.deal_id for c in catalog)),
                    "要几份？请写一个具体数量，比如「要2份」", range_=True)
    if not scope.quoted and intent.deal_no is None and any(ln.item is None for ln in intent.lines):
        closed = _names_closed_deal(turn, text, catalog)
        if closed is not None:
            return _closed_ack(turn, closed)
    if intent.deal_no is not None:
        catalog = [c for c in catalog if c.deal_id == intent.deal_no]
        if not catalog:
            deal = turn.deal(intent.deal_no)
            if deal is not None and turn.room is not None and deal.room_id == turn.room.id:
                return _closed_ack(turn, deal)
            return Outcome()
    deal_ids = list(dict.fromkeys(c.deal_id for c in catalog))
    named = {ln.item.deal_id for ln in intent.lines if ln.item is not None}
    if named:
        deal_ids = [d for d in deal_ids if d in named]
    if (intent.kind in ("cancel", "set", "sub") or intent.more) and len(deal_ids) > 1:
        mine = [d for d in deal_ids if any(o.status == "active" for o in
                                          ops.member_orders(turn.session, d, turn.member))]
        deal_ids = mine or deal_ids
        if not mine:
            return Outcome(acks=[turn.ack("refused", {"reason": "nothing", "deal_id": deal_ids[0],
                                                      "title": ""})])
    unresolved = [ln for ln in intent.lines if ln.item is None]
    if unresolved and len(deal_ids) > 1 and not named:
        titles = "、".join(f"#{d} {deal.title}" for d in deal_ids if (deal := turn.deal(d)))
        return _ask(turn, text, deal_ids, f"现在有{len(deal_ids)}个团，要哪个？回复商品名或团号：{titles}")
    results: list[ops.OrderChange | ops.OrderRefusal] = []
    touched: list[Deal] = []
    for deal_id in deal_ids:
        deal = turn.deal(deal_id)
        assert deal is not None
        touched.append(deal)
        items = [c for c in catalog if c.deal_id == deal_id]
        lines: list[tuple[CatalogItem | None, Decimal | None]] = [
            (ln.item, ln.qty) for ln in intent.lines
            if ln.item is not None and ln.item.deal_id == deal_id]
        if unresolved and (len(deal_ids) == 1 or not named):
            for ln in unresolved:
                if ln.item_no is not None:
                    match = [c for c in items if c.item_no == ln.item_no]
                    if not match:
                        return _ask(turn, text, [deal_id], _which_item(items))
                    lines.append((match[0], ln.qty))
                elif intent.all_items:
                    lines += [(c, ln.qty) for c in items]
                elif len(items) == 1 or intent.kind == "cancel":
                    lines.append((items[0] if len(items) == 1 else None, ln.qty))
                else:
                    own_items = _my_items(turn, deal, items)
                    if (intent.kind == "order" and not intent.more) or len(own_items) != 1:
                        return _ask(turn, text, [deal_id], _which_item(items))
                    lines.append((own_items[0], ln.qty))
        if intent.kind == "cancel":
            chosen = [_item(turn, c) for c, _ in lines if c is not None]
            changes = ops.cancel_member_orders(turn.session, deal, turn.member, turn.now, chosen)
            results += changes or [ops.OrderRefusal("nothing", deal, None, turn.member)]
            continue
        mode: ops.Mode = {"order": "add", "set": "set", "sub": "sub"}[intent.kind]  # type: ignore[assignment]
        for cat, qty in lines:
            assert cat is not None
            result = ops.change_order(
                turn.session, deal, _item(turn, cat), turn.member, qty if qty is not None else ONE,
                mode, turn.now, note=intent.note, placed_for=intent.placed_for,
                max_qty=Decimal(turn.settings.max_qty_per_line),
                known=None if intent.placed_for else turn.take_own_order(deal.id or 0))
            results.append(result)
        if lines:
            turn.record.deal_id = deal.id
            turn.record.item_no = lines[0][0].item_no if lines[0][0] else None
    outcome = Outcome()
    for deal in touched:
        _collect(turn, outcome, deal, [r for r in results if r.deal.id == deal.id])
    return outcome


# "小魏那单", "杨阿姨的", "把老谭的", "帮老谭取消": an order named by its owner.
_NAME = r"[^\s,，。!！?？:：@]{1,8}?"
_OWNED_ORDER = re.compile(rf"(?P<who>{_NAME})(?:那单|那份|那一单|的单|的订单|的那单|的那份|的)"
                          rf"|(?:帮|替|把)(?P<for>{_NAME})(?:取消|撤|改|减|加|去掉|删)")


def _about_another_members_order(turn: Turn, text: str) -> bool:
    """Whether a change or cancel names the order of another member of the room."""
    assert turn.room is not None
    names: set[str] = set()
    for m in _OWNED_ORDER.finditer(text):
        who = m.group("who") or m.group("for")
        names.update(who[i:] for i in range(len(who)))  # "哎小魏那单": the name may start later
    names.discard(turn.member.name)
    return bool(names) and ops.any_member_named(turn.session, turn.room, names)


def _names_closed_deal(turn: Turn, text: str, catalog: list[CatalogItem]) -> Deal | None:
    """A recently closed deal whose item the text names, when no open item is named
    ("酸奶还能要吗？来3瓶" after the yoghurt deal closed must not land on the eggs)."""
    closed_ids = turn.room_state().closed_ids
    if not closed_ids:
        return None
    closed_cat = [catalog_item(it, 1) for d in closed_ids for it in turn.items.get(turn.session, d)]
    open_names = {c.name for c in catalog}
    hits = [c for _, _, c in find_items(text, closed_cat + catalog) if c.name not in open_names
            and c.deal_id in closed_ids]
    if not hits or find_items(text, catalog):
        return None
    return turn.session.get(Deal, hits[0].deal_id)


def _which_item(items: list[CatalogItem]) -> str:
    options = " ".join(f"{c.item_no}.{c.name}" for c in items)
    return f"要哪一个？回复商品名或序号：{options}"


def _my_items(turn: Turn, deal: Deal, items: list[CatalogItem],
              member: Member | None = None) -> list[CatalogItem]:
    """The items the member (the speaker unless given) has ordered for themselves on the deal."""
    mine = ops.own_quantities(turn.session, deal, member or turn.member)
    return [c for c in items if _item(turn, c).id in mine]


def _collect(turn: Turn, outcome: Outcome, deal: Deal,
             results: list[ops.OrderChange | ops.OrderRefusal]) -> None:
    """Turn domain results into acks, with the deal's progress and any milestone."""
    if not results:
        return
    items = turn.items.get(turn.session, deal.id or 0)
    multi = len(items) > 1
    moved = [r.counts for r in results if isinstance(r, ops.OrderChange) and r.counts is not None]
    prog = ops.progress_from_counts(deal, items, moved[-1]) if moved else None
    if prog is None and any(isinstance(r, ops.OrderChange) for r in results):
        prog = ops.progress(turn.session, deal)
    snapshot = progress_snapshot(deal, prog) if prog is not None else None
    for r in results:
        if isinstance(r, ops.OrderRefusal):
            unit = (r.item.unit if r.item else None) or "份"
            outcome.acks.append(turn.ack("refused", {
                "reason": r.reason, "deal_id": deal.id, "title": deal.title, "unit": unit,
                "requested": r.requested, "already": r.already, "allowed": r.allowed,
                "status_text": CLOSED_TEXT.get(deal.status, deal.status)}))
            continue
        kind = "added" if r.before == 0 else "cancelled" if r.after == 0 else "changed"
        outcome.acks.append(turn.ack(kind, {
            "deal_id": deal.id, "title": deal.title, "item": r.item.name if multi else None,
            "qty": r.after - r.before if kind == "added" else r.after, "before": r.before,
            "after": r.after, "unit": r.item.unit or "份", "placed_for": r.placed_for}, snapshot))
    if snapshot is None:
        return
    found = ops.check_milestones(turn.session, deal, prog)
    for kind, hit in (("half", found.half), ("succeeded", found.succeeded),
                      ("sold_out", found.sold_out)):
        if hit:
            outcome.acks.append(turn.ack("milestone", {"deal_id": deal.id, "title": deal.title,
                                                       "kind": kind}, snapshot))
