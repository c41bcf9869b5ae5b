"""`tuangou export`: the JSON interface of SPEC §6, and CSV / XLSX for people."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from bot.config import Settings
from models import ops
from models.tables import Deal, Member, Order, OrderLine, Room


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def export_deals(session: Session, settings: Settings, deal_id: int | None = None) -> dict[str, Any]:
    """All deals (or one) in creation order, in the stable JSON shape."""
    query = select(Deal).order_by(col(Deal.id))
    if deal_id is not None:
        query = query.where(Deal.id == deal_id)
    out = []
    for deal in session.exec(query).all():
        room = session.get(Room, deal.room_id)
        leader = session.get(Member, deal.leader_id)
        items = ops.deal_items(session, deal.id or 0)
        names = {it.id: it.name for it in items}
        orders = []
        for order, member in session.exec(
                select(Order, Member).join(Member, col(Member.id) == col(Order.member_id))
                .where(Order.deal_id == deal.id).order_by(col(Order.id))).all():
            lines = session.exec(select(OrderLine).where(OrderLine.order_id == order.id)
                                 .order_by(col(OrderLine.id))).all()
            orders.append({
                "member": member.name, "status": order.status, "note": order.note,
                "placed_for": order.placed_for,
                "lines": [{"item": names[ln.item_id], "qty": _number(ln.qty)} for ln in lines],
                "paid": order.paid, "picked_up": order.picked_up,
            })
        out.append({
            "id": deal.id, "room": room.name if room else None, "title": deal.title,
            "leader": leader.name if leader else None, "status": deal.status,
            "deadline": deal.deadline.astimezone(settings.tz).isoformat() if deal.deadline else None,
            "threshold": _number(deal.threshold), "threshold_unit": deal.threshold_unit,
            "stock": _number(deal.stock), "limit_per_member": _number(deal.limit_per_member),
            "delivery": deal.delivery_text, "pickup": deal.pickup,
            "items": [{"no": it.no, "name": it.name,
                       "price": f"{it.price:.2f}" if it.price is not None else None,
                       "unit": it.unit, "stock": _number(it.stock)} for it in items],
            "orders": orders,
        })
    return {"deals": out}


_COLUMNS = ["deal", "room", "title", "deal_status", "member", "placed_for", "order_status",
            "item", "qty", "unit", "price", "amount", "note", "paid", "picked_up"]


def rows(data: dict[str, Any]) -> list[list[Any]]:
    """One row per order line, for CSV and XLSX."""
    table: list[list[Any]] = []
    for deal in data["deals"]:
        items = {it["name"]: it for it in deal["items"]}
        for order in deal["orders"]:
            for line in order["lines"]:
                item = items[line["item"]]
                price = Decimal(item["price"]) if item["price"] else None
                amount = price * Decimal(str(line["qty"])) if price is not None else None
                table.append([deal["id"], deal["room"], deal["title"], deal["status"],
                              order["member"], order["placed_for"], order["status"],
                              line["item"], line["qty"], item["unit"],
                              item["price"], f"{amount:.2f}" if amount is not None else None,
                              order["note"], order["paid"], order["picked_up"]])
    return table


def to_csv(data: dict[str, Any]) -> str:
    """CSV with a header row (UTF-8 BOM added by the caller for Excel if wanted)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(_COLUMNS)
    writer.writerows(rows(data))
    return buf.getvalue()


def to_xlsx(data: dict[str, Any]) -> bytes:
    """An XLSX workbook with one sheet of order lines."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "orders"
    ws.append(_COLUMNS)
    for row in rows(data):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
