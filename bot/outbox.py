"""The outbox: coalesces acknowledgements per chat and sends everything else in order.

In a burst, each room gets one message listing the new orders, changes and refusals of the
last ``window`` seconds instead of one per order; WeChat bans accounts that send too much.

Acknowledgements wait in the database (table ``pendingack``), written in the same
transaction as the order they acknowledge: a crash loses none, and when several workers
serve one room (two bot accounts in a group) the acks of all of them are claimed by whichever
worker flushes the room first, so the room still gets one message per window.
The outbox keeps no clock of its own: the live runner and the replay both call
``flush_due(now)`` as their time moves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.render import Renderer
from bot.types import Ack, DealProgress, OutgoingMessage, Reply
from models import ops
from models.db import SessionFactory

log = logging.getLogger(__name__)
Sender = Callable[[OutgoingMessage], Awaitable[None]]
# Acks of a chat that no worker serving it has flushed this long after they were due (its
# worker died and nothing was said there since) are sent by any worker.
ORPHAN_AFTER = timedelta(seconds=30)


def chat_key(room_id: str | None, to_id: str | None) -> str:
    """The chat a message goes to: a room, else a person."""
    return f"room:{room_id}" if room_id else f"to:{to_id}"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot queue a {type(value).__name__} in an ack")


def _hook(obj: dict[str, Any]) -> Any:
    return Decimal(obj["$decimal"]) if obj.keys() == {"$decimal"} else obj


def _shallow(obj: Any) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value first, which JSON does not need (it cost
    # about 5% of a burst).
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def encode_ack(ack: Ack) -> str:
    """An ack as JSON text (Decimals kept exact)."""
    progress = None if ack.progress is None else _shallow(ack.progress)
    return json.dumps({**_shallow(ack), "data": dict(ack.data), "progress": progress},
                      default=_default, ensure_ascii=False)


def decode_ack(text: str) -> Ack:
    """The ack ``encode_ack`` wrote."""
    raw = json.loads(text, object_hook=_hook)
    progress = DealProgress(**raw.pop("progress")) if raw["progress"] else None
    return Ack(**{**raw, "progress": progress})


class Outbox:
    """Queues ``Ack``s per chat over a window and renders ``Reply``s for the transport."""

    def __init__(self, renderer: Renderer, window_seconds: float, send: Sender,
                 sessions: SessionFactory, *, sender_confirms: bool = False,
                 lease_seconds: float = 120.0) -> None:
        """
        Args:
            renderer: Renders templates.
            window_seconds: How long acks of a chat are collected into one message.
            send: Where messages go.
            sessions: The database.
            sender_confirms: ``send`` only queues (the pacer) and awaits each message's
                ``receipt`` once it is really sent; otherwise a message counts as sent when
                ``send`` returns.
            lease_seconds: Acks claimed this long ago and still not confirmed (their worker
                died before sending) are claimed and sent again.
        """
        self._renderer = renderer
        self._window = timedelta(seconds=window_seconds)
        self._send = send
        self._sessions = sessions
        self._sender_confirms = sender_confirms
        self._lease = timedelta(seconds=lease_seconds)
        # When this worker's earliest queued ack is due, as far as it knows (another worker
        # may have sent it already: flush_due then finds nothing, which is harmless).
        self._due: datetime | None = None
        # The chats this worker's account has heard from: it flushes their acks, not those of
        # rooms another account serves (it may not even be in them).
        self._chats: set[str] = set()
        # Acks this worker claimed and handed to the sender, not yet confirmed sent: their
        # claim is renewed while they wait (pacing may hold them longer than the lease).
        self._in_flight: set[int] = set()

    def serve(self, chat: str) -> None:
        """Note that a message came from this chat through this worker."""
        self._chats.add(chat)

    def stage(self, acks: Sequence[Ack], now: datetime) -> list[ops.AckRow]:
        """The rows that queue these acknowledgements: the caller inserts them in the
        transaction of the change they acknowledge (``ops.record_message``)."""
        rows = [(chat_key(None if a.to_id else a.room_id, a.to_id), now, encode_ack(a))
                for a in acks]
        self._chats.update(chat for chat, _, _ in rows)
        return rows

    def staged(self, now: datetime) -> None:
        """Note, after the commit, that acks queued at ``now`` are due one window later."""
        due = now + self._window
        if self._due is None or due < self._due:
            self._due = due

    async def send_reply(self, reply: Reply) -> None:
        """Send a reply now; pending acks of the same chat go first so the chat reads in order."""
        await self._flush(chat_key(reply.room_id, reply.to_id), None)
        text = self._renderer.render(reply.template, reply.data)
        await self._send(OutgoingMessage(text, reply.room_id, reply.room_name, reply.to_id,
                                         reply.to_name, reply.mentions))

    def next_due(self) -> datetime | None:
        """When the earliest ack this worker queued must go out, or None."""
        return self._due

    async def flush_due(self, now: datetime) -> None:
        """Send the acks of this worker's chats whose window has passed by ``now`` (and of
        orphaned chats), oldest first; then note when the next of them is due."""
        wall = datetime.now(UTC)
        with self._sessions() as session:
            if self._in_flight:
                ops.renew_claims(session, list(self._in_flight), wall)
            queued = self._mine(ops.queued_ack_chats(session, wall - self._lease))
            due = [chat for chat, at in queued if at <= now]
            # Claimed in the transaction that found them due (in chat order, the same in
            # every worker, so two claiming at once never wait for each other in a circle).
            claimed = {chat: ops.claim_acks(session, chat, now - self._window, wall,
                                            wall - self._lease) for chat in sorted(due)}
            session.commit()
        # All claimed now: their claims are renewed while they wait for their turn.
        self._in_flight.update(row_id for rows in claimed.values() for row_id, _ in rows)
        for chat in due:
            try:
                await self._send_claimed(claimed[chat])
            except Exception:  # this chat's acks come back after the lease; the others go on
                self._in_flight.difference_update(row_id for row_id, _ in claimed[chat])
                log.exception("sending the acknowledgements of %s failed", chat)
        self._due = min((at for chat, at in queued if chat not in due), default=None)

    async def flush_all(self) -> None:
        """Send everything pending in this worker's chats (end of a replay, shutdown)."""
        with self._sessions() as session:
            queued = ops.queued_ack_chats(session, self._stale())
        for chat, _ in queued:
            if chat in self._chats:
                await self._flush(chat, None)
        self._due = None

    def _mine(self, queued: list[tuple[str, datetime]]) -> list[tuple[str, datetime]]:
        """(chat, when due) for this worker's chats, and for others' orphaned ones."""
        out = []
        for chat, oldest in queued:
            due = oldest + self._window
            if chat not in self._chats:
                due += ORPHAN_AFTER
            out.append((chat, due))
        return sorted(out, key=lambda cd: cd[1])

    def _stale(self) -> datetime:
        # Claims are stamped with the wall clock, not the (possibly virtual) bot clock.
        return datetime.now(UTC) - self._lease

    @property
    def pending(self) -> int:
        """Number of acknowledgements waiting or being sent (all workers')."""
        with self._sessions() as session:
            return ops.count_acks(session)

    async def _flush(self, chat: str, due_before: datetime | None) -> None:
        """Claim the chat's queued acks (if its oldest is due by ``due_before``) and send them
        as one message. The claim is atomic: of two workers flushing at once, one gets them.
        They leave the queue when the message is sent; if this process dies first, another
        claims them again after the lease."""
        now = datetime.now(UTC)
        with self._sessions() as session:
            rows = ops.claim_acks(session, chat, due_before, now, now - self._lease)
            session.commit()
        await self._send_claimed(rows)

    async def _send_claimed(self, rows: list[tuple[int, str]]) -> None:
        """Send claimed acks (id, payload) as one message; they leave the queue once sent."""
        if not rows:
            return
        ids = [row_id for row_id, _ in rows]
        self._in_flight.update(ids)

        async def receipt() -> None:
            with self._sessions() as session:
                ops.forget_acks(session, ids)
                session.commit()
            self._in_flight.difference_update(ids)

        msg = self._compose([decode_ack(payload) for _, payload in rows])
        if msg is None:
            await receipt()
            return
        await self._send(replace(msg, receipt=receipt))
        if not self._sender_confirms:
            await receipt()

    def _compose(self, acks: list[Ack]) -> OutgoingMessage | None:
        """One message for a chat's acks (None if they render to nothing)."""
        first = acks[0]
        groups: dict[int | None, dict] = {}
        mentions: list[str] = []
        for ack in acks:
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
            return None
        return OutgoingMessage(text, None if first.to_id else first.room_id, first.room_name,
                               first.to_id, first.to_name, tuple(mentions))
