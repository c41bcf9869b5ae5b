"""A chat harness for conversation tests: the real pipeline on a virtual clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.adapters.replay import Directive, Replay, Said
from bot.app import App, build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.export import export_deals
from bot.scheduler import VirtualScheduler
from bot.types import OutgoingMessage


class Chat:
    """Say things as members, move time, read what the bot sent and what it stored."""

    def __init__(self, db_url: str, *, start: str = "2026-11-24 09:00", room: str = "测试群",
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = ManualClock(datetime.strptime(start, "%Y-%m-%d %H:%M").replace(
            tzinfo=self.settings.tz))
        self.scheduler = VirtualScheduler()
        self.sent: list[OutgoingMessage] = []
        self.app: App = build_app(self.settings, self.clock, self._send, self.scheduler, db_url)
        self.replay = Replay(self.app, self.clock, self.scheduler, "test")
        self._line = 0
        self._room = room
        self._read = 0

    async def _send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)

    async def _event(self, event: Any) -> None:
        self._line += 1
        await self.replay.run_events([event])

    async def room(self, name: str) -> None:
        """Switch the room the next messages are said in."""
        self._room = name
        await self._event(Directive(self._line, "room", name))

    async def leader(self, name: str) -> None:
        """Make a member a leader of the current room (as the room owner is)."""
        await self._event(Directive(self._line, "leader", name))

    async def say(self, name: str, text: str, *, private: bool = False,
                  msg_id: str | None = None) -> list[OutgoingMessage]:
        """Send a message; returns the bot messages sent immediately (acks wait: see flush)."""
        before = len(self.sent)
        self._line += 1
        await self.replay.run_events([Said(self._line, name, text, private)], msg_id=msg_id)
        return self.sent[before:]

    async def flush(self) -> list[OutgoingMessage]:
        """Let the ack window pass; returns everything sent meanwhile."""
        before = len(self.sent)
        await self.replay.advance_to(self.clock.now() + timedelta(
            seconds=self.settings.ack_window_seconds + 1))
        return self.sent[before:]

    async def at(self, when: str) -> list[OutgoingMessage]:
        """Move the clock to a time ("2026-11-25 20:01"), running due jobs; returns what was sent."""
        before = len(self.sent)
        target = datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=self.settings.tz)
        await self.replay.advance_to(target)
        return self.sent[before:]

    def texts(self) -> list[str]:
        """Every bot message text so far."""
        return [m.text for m in self.sent]

    def export(self) -> dict[str, Any]:
        with self.app.sessions() as session:
            return export_deals(session, self.settings)

    def orders(self, deal_index: int = 0) -> dict[str, dict[str, float]]:
        """member -> item -> active qty of the n-th deal (as the transcript checker counts)."""
        deal = self.export()["deals"][deal_index]
        out: dict[str, dict[str, float]] = {}
        for order in deal["orders"]:
            if order["status"] != "active":
                continue
            for line in order["lines"]:
                if line["qty"]:
                    member = out.setdefault(order["member"], {})
                    member[line["item"]] = member.get(line["item"], 0) + line["qty"]
        return out

    def close(self) -> None:
        self.app.engine.dispose()
