"""Announcements shared by leader commands and scheduled jobs (close, reminder, delivery)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.config import Settings
from bot.types import Reply
from handlers.common import deal_view, duration_text
from models import ops
from models.tables import Deal


def batched_replies(settings: Settings, template: str, data: dict[str, Any], room_id: str,
                    room_name: str, mentions: tuple[str, ...]) -> list[Reply]:
    """One message, followed by more when the @mention list is longer than one batch."""
    size = max(settings.mention_batch, 1)
    chunks = [mentions[i:i + size] for i in range(0, len(mentions), size)] or [()]
    replies = [Reply(template, {**data, "mentions": list(chunks[0])}, room_id=room_id,
                     room_name=room_name, mentions=chunks[0])]
    replies += [Reply("mentions", {"mentions": list(chunk)}, room_id=room_id, room_name=room_name,
                      mentions=chunk) for chunk in chunks[1:]]
    return replies


def close_announcement(session: Session, deal: Deal, status: str, settings: Settings,
                       room_id: str, room_name: str) -> list[Reply]:
    """The message of a closed deal: totals on success, @buyers on failure."""
    buyer_list = ops.buyers(session, deal.id or 0)
    totals = [{"name": t.item.name, "qty": t.qty, "unit": t.item.unit}
              for t in ops.item_totals(session, deal.id or 0)]
    names = tuple(dict.fromkeys(b.member.name for b in buyer_list)) if status == "failed" else ()
    return batched_replies(settings, "deal_closed", {
        "d": deal_view(session, deal, settings), "status": status, "totals": totals,
        "buyers": buyer_list, "p": ops.progress(session, deal),
    }, room_id, room_name, names)


def reminder(session: Session, deal: Deal, settings: Settings, room_id: str, room_name: str,
             now: Any) -> Reply:
    """还有1小时截团，还差3箱成团."""
    assert deal.deadline is not None
    return Reply("reminder", {"d": deal_view(session, deal, settings),
                              "left": duration_text(deal.deadline - now),
                              "p": ops.progress(session, deal)},
                 room_id=room_id, room_name=room_name)


def delivery(session: Session, deal: Deal, settings: Settings, room_id: str,
             room_name: str) -> Reply:
    """The morning-of-delivery note for a deal that succeeded."""
    return Reply("delivery", {"d": deal_view(session, deal, settings)}, room_id=room_id,
                 room_name=room_name)
