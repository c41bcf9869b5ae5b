"""Paced sending: between the outbox and a live transport.

WeChat restricts accounts that post in bursts, so a live bot never sends faster than
``room_interval_seconds`` per room and ``account_per_minute`` over all its chats. Messages
that wait for their room's turn are merged into one (acks, progress and cards read fine as
one message), a failed send is retried with exponential backoff, and a message that fails
for good is logged with its text: nothing is silently dropped.

Each room has a mode: ``live`` posts in the group; ``shadow`` sends what it would have
posted privately to the room's leaders (a leader can watch the bot before letting it
talk); ``observe`` posts nothing. Orders are recorded the same in every mode; only this
layer differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bot.config import Settings
from bot.outbox import Sender, chat_key
from bot.types import OutgoingMessage

log = logging.getLogger(__name__)

MAX_MERGED_CHARS = 1800  # one WeChat message stays readable (and under the puppets' limits)
ACCOUNT_WINDOW = 60.0
MAX_BACKOFF = 60.0  # seconds between retries at most

LeadersOf = Callable[[str], list[tuple[str, str]]]  # room platform id -> (member id, name)


@dataclass
class _Queue:
    messages: deque[OutgoingMessage] = field(default_factory=deque)
    last_sent: float = float("-inf")
    not_before: float = 0.0  # set after a failed send (backoff)
    attempts: int = 0


async def _confirm(msg: OutgoingMessage) -> None:
    """Tell the message's author it is done with (sent, or given up on and logged)."""
    if msg.receipt is not None:
        try:
            await msg.receipt()
        except Exception:  # the message went out; a failed confirmation only means a resend
            log.exception("confirming a sent message failed")


class Pacer:
    """Queues outgoing messages per chat and sends them within the configured limits."""

    def __init__(self, settings: Settings, send: Sender, leaders_of: LeadersOf, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 account_window: float = ACCOUNT_WINDOW) -> None:
        self._settings = settings
        self._window = account_window
        self._send = send
        self._leaders_of = leaders_of
        self._now = monotonic
        self._queues: dict[str, _Queue] = {}
        self._order: deque[str] = deque()  # chats in the order their oldest message arrived
        self._sent_at: deque[float] = deque()  # account-wide send times in the last minute
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent = 0
        self.failed: list[OutgoingMessage] = []

    async def submit(self, msg: OutgoingMessage) -> None:
        """Queue a message as the room's mode says; returns at once."""
        mode = self._settings.mode_of(msg.room_name) if msg.room_id else "live"
        if mode == "observe":
            log.info("observe mode, not posted in %s: %s", msg.room_name, msg.text)
            await _confirm(msg)
            return
        if mode == "shadow":
            leaders = self._leaders_of(msg.room_id or "")
            if not leaders:
                log.info("shadow mode, no leader known in %s yet: %s", msg.room_name, msg.text)
                await _confirm(msg)
            for n, (member_id, name) in enumerate(leaders, start=1):
                self._enqueue(OutgoingMessage(f"【影子模式·{msg.room_name}】本会在群里发：\n{msg.text}",
                                              to_id=member_id, to_name=name,
                                              receipt=msg.receipt if n == len(leaders) else None))
            return
        self._enqueue(msg)

    def _enqueue(self, msg: OutgoingMessage) -> None:
        key = chat_key(msg.room_id, msg.to_id)
        if key not in self._queues and len(self._queues) > 1000:
            self._forget_quiet_chats()
        queue = self._queues.setdefault(key, _Queue())
        if key not in self._order:  # (it may be out of the order only while being sent)
            self._order.append(key)
        queue.messages.append(msg)
        self._idle.clear()
        self._wake.set()

    def _forget_quiet_chats(self) -> None:
        """Drop the send times of chats with nothing queued whose interval has passed."""
        horizon = self._now() - self._settings.room_interval_seconds
        for key in [k for k, q in self._queues.items() if not q.messages and q.last_sent < horizon]:
            del self._queues[key]

    @property
    def pending(self) -> int:
        """Messages waiting to be sent."""
        return sum(len(q.messages) for q in self._queues.values())

    def _next_ready(self, now: float) -> tuple[str | None, float]:
        """The chat to send to now (None if none), or how long until one may send."""
        while self._sent_at and self._sent_at[0] <= now - self._window:
            self._sent_at.popleft()
        if len(self._sent_at) >= self._settings.account_per_minute:
            return None, self._sent_at[0] + self._window - now
        wait = float("inf")
        for key in self._order:
            queue = self._queues[key]
            ready_at = max(queue.last_sent + self._settings.room_interval_seconds, queue.not_before)
            if ready_at <= now:
                return key, 0.0
            wait = min(wait, ready_at - now)
        return None, wait

    def _take(self, key: str) -> OutgoingMessage:
        """The chat's waiting messages as one (up to a readable length); the rest stay queued."""
        queue = self._queues[key]
        first = queue.messages.popleft()
        parts = [first]
        size = len(first.text)
        while queue.messages and size + len(queue.messages[0].text) + 2 <= MAX_MERGED_CHARS:
            parts.append(queue.messages.popleft())
            size += len(parts[-1].text) + 2
        if len(parts) == 1:
            return first
        mentions: list[str] = []
        for part in parts:
            mentions += [m for m in part.mentions if m not in mentions]

        async def receipts() -> None:
            for part in parts:
                await _confirm(part)

        return replace(first, text="\n\n".join(p.text for p in parts), mentions=tuple(mentions),
                       receipt=receipts)

    async def _send_one(self, key: str, now: float) -> None:
        queue = self._queues[key]
        msg = self._take(key)
        self._sent_at.append(now)
        queue.last_sent = now
        try:
            await self._send(msg)
        except Exception as exc:  # the transport's failures are many; each is retried
            # Not connected (the puppet is down, reconnecting): wait for it, however long;
            # only failures of a connected transport count towards giving up.
            if not isinstance(exc, ConnectionError):
                queue.attempts += 1
            if queue.attempts > self._settings.send_retries:
                log.error("sending failed for good after %d attempts to %s: %s\n%s",
                          queue.attempts, msg.room_name or msg.to_name, exc, msg.text)
                self.failed.append(msg)
                queue.attempts = 0
                await _confirm(msg)
            else:
                delay = min(self._settings.retry_base_seconds * 2 ** max(queue.attempts - 1, 0),
                            MAX_BACKOFF)
                log.warning("sending to %s failed (%s); retry %d in %.1f s",
                            msg.room_name or msg.to_name, exc, queue.attempts, delay)
                queue.messages.appendleft(msg)
                queue.not_before = self._now() + delay  # from now: the send itself may be slow
        else:
            queue.attempts = 0
            self.sent += 1
            await _confirm(msg)
        # The chat goes to the back (other chats waiting longer go first), or out when done;
        # its queue stays to remember when it last sent.
        if key in self._order:
            self._order.remove(key)
        if queue.messages:
            self._order.append(key)
        elif not self._order:
            self._idle.set()

    async def run(self) -> None:
        """Send queued messages as the limits allow, until cancelled."""
        while True:
            self._wake.clear()
            try:
                key, wait = self._next_ready(self._now())
                if key is not None:
                    await self._send_one(key, self._now())
                    continue
            except Exception:  # a bug here must not silence the bot for good
                log.exception("the pacer failed; it carries on")
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if wait == float("inf") else wait)

    async def drain(self, seconds: float) -> None:
        """Wait (with ``run`` going) until everything is sent; log what is left at the timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
        for key in self._order:
            for msg in self._queues[key].messages:
                log.error("not sent before shutdown, to %s:\n%s", msg.room_name or msg.to_name,
                          msg.text)
