"""The outbox: coalesces acknowledgements per chat and sends everything else in order.

In a burst, each room gets one message listing the new orders, changes and refusals of the
last ``window`` seconds instead of one per order; WeChat bans accounts that send too much.
The outbox keeps no clock of its own: the live runner and the replay both call
``flush_due(now)`` as their time moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.render import Renderer
from bot.types import Ack, OutgoingMessage, Reply

Sender = Callable[[OutgoingMessage], Awaitable[None]]


@dataclass
class _Batch:
    first_at: datetime
    acks: list[Ack] = field(default_factory=list)


class Outbox:
    """Coalesces ``Ack``s per chat over a window and renders ``Reply``s for the transport."""

    def __init__(self, renderer: Renderer, window_seconds: float, send: Sender) -> None:
        self._renderer = renderer
        self._window = timedelta(seconds=window_seconds)
        self._send = send
        self._batches: dict[tuple[str | None, str | None], _Batch] = {}

    @staticmethod
    def _key(room_id: str | None, to_id: str | None) -> tuple[str | None, str | None]:
        return (room_id, None) if room_id else (None, to_id)

    def add_ack(self, ack: Ack, now: datetime) -> None:
        """Queue an acknowledgement; it goes out within the window."""
        key = self._key(None if ack.to_id else ack.room_id, ack.to_id)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(now)
        batch.acks.append(ack)

    async def send_reply(self, reply: Reply) -> None:
        """Send a reply now; pending acks of the same chat go first so the chat reads in order."""
        key = self._key(reply.room_id, reply.to_id)
        if key in self._batches:
            await self._flush(key)
        text = self._renderer.render(reply.template, reply.data)
        await self._send(OutgoingMessage(text, reply.room_id, reply.room_name, reply.to_id,
                                         reply.to_name, reply.mentions))

    def next_due(self) -> datetime | None:
        """When the earliest pending batch must go out, or None if nothing is pending."""
        if not self._batches:
            return None
        return min(b.first_at for b in self._batches.values()) + self._window

    async def flush_due(self, now: datetime) -> None:
        """Send every batch whose window has passed by ``now``, oldest first."""
        due = sorted((b.first_at, k) for k, b in self._batches.items() if b.first_at + self._window <= now)
        for _, key in due:
            await self._flush(key)

    async def flush_all(self) -> None:
        """Send everything pending (end of a replay, shutdown)."""
        for key in sorted(self._batches, key=lambda k: self._batches[k].first_at):
            await self._flush(key)

    @property
    def pending(self) -> int:
        """Number of acknowledgements waiting."""
        return sum(len(b.acks) for b in self._batches.values())

    async def _flush(self, key: tuple[str | None, str | None]) -> None:
        batch = self._batches.pop(key, None)
        if batch is None or not batch.acks:
            return
        first = batch.acks[0]
        groups: dict[int | None, dict] = {}
        mentions: list[str] = []
        for ack in batch.acks:
            deal_id = ack.progress.deal_id if ack.progress else ack.data.get("deal_id")
            group = groups.setdefault(deal_id, {
                "deal_id": deal_id, "title": ack.data.get("title", ""), "added": [], "changed": [],
                "cancelled": [], "refused": [], "question": [], "milestone": [], "progress": None,
            })
            group[ack.kind].append(ack.data)
            if ack.progress is not None:
                group["progress"] = ack.progress
            if ack.kind in ("refused", "question") and not ack.to_id:
                name = ack.data.get("member")
                if name and name not in mentions:
                    mentions.append(name)
        text = self._renderer.render("ack", {"groups": list(groups.values()),
                                             "private": bool(first.to_id)})
        if not text:
            return
        await self._send(OutgoingMessage(text, None if first.to_id else first.room_id,
                                         first.room_name, first.to_id, first.to_name,
                                         tuple(mentions)))
