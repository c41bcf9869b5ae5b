"""Replay: a transcript file drives the real pipeline on a virtual clock (SPEC §5).

Only the transport and the clock are simulated; parser, handlers, templates and job
functions are the live ones.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from bot.app import App, build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage
from handlers.parsing.wechat import mentions


class TranscriptError(ValueError):
    """A malformed transcript line."""

    def __init__(self, line_no: int, problem: str) -> None:
        super().__init__(f"line {line_no}: {problem}")
        self.line_no = line_no


@dataclass(frozen=True)
class Directive:
    """@room NAME, @now TIME or @leader NAME."""

    line_no: int
    kind: str
    value: str


@dataclass
class Said:
    """A message line (with its continuation lines)."""

    line_no: int
    name: str
    text: str
    private: bool


Event = Directive | Said
_DIRECTIVE = re.compile(r"^@(room|now|leader)\s+(.+)$")


def parse_transcript(text: str) -> list[Event]:
    """Parse a transcript into events.

    Raises:
        TranscriptError: naming the first malformed line.
    """
    events: list[Event] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.startswith("| ") or line == "|":
            if not events or not isinstance(events[-1], Said):
                raise TranscriptError(n, "a continuation line with no message before it")
            events[-1].text += "\n" + line[2:]
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _DIRECTIVE.match(line)
        if m:
            events.append(Directive(n, m.group(1), m.group(2).strip()))
            continue
        private = line.startswith("@private ")
        body = line[len("@private "):] if private else line
        if line.startswith("@") and not private:
            raise TranscriptError(n, f"unknown directive {line.split()[0]!r}")
        name, sep, said = body.partition(": ")
        if not sep or not name.strip():
            raise TranscriptError(n, "expected 'NAME: TEXT'")
        events.append(Said(n, name.strip(), said, private))
    return events


class ReplayAdapter:
    """Prints what the bot sends, in the transcript output format."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)
        head = f"bot@{message.room_name}: " if message.room_id else f"bot→{message.to_name}: "
        lines = message.text.split("\n")
        self._out.write(head + lines[0] + "\n")
        for line in lines[1:]:
            self._out.write(("| " + line if line else "|") + "\n")
        self._out.flush()


def member_id(name: str) -> str:
    """The replay's stable platform id for a member name."""
    return f"replay:member:{name}"


class Replay:
    """Runs events through an app whose clock and scheduler it owns."""

    def __init__(self, app: App, clock: ManualClock, scheduler: VirtualScheduler,
                 digest: str) -> None:
        self.app = app
        self.clock = clock
        self.scheduler = scheduler
        self._digest = digest
        self._room: str | None = None
        self._leaders: set[tuple[str, str]] = set()

    async def advance_to(self, target: datetime) -> None:
        """Move the clock to ``target``, running due jobs and ack flushes in time order."""
        while True:
            job_at = self.scheduler.next_due()
            flush_at = self.app.outbox.next_due()
            nxt = min((t for t in (job_at, flush_at) if t is not None and t <= target), default=None)
            if nxt is None:
                break
            if nxt > self.clock.now():
                self.clock.set(nxt)
            if flush_at is not None and flush_at <= nxt:
                await self.app.outbox.flush_due(nxt)
                continue
            due = self.scheduler.pop_due(nxt)
            if due is not None:
                await self.app.run_job(due[1], due[2])
        if target > self.clock.now():
            self.clock.set(target)

    async def run(self, events: list[Event]) -> None:
        """Play every event, then flush pending acknowledgements."""
        await self.run_events(events)
        await self.advance_to(self.clock.now())
        await self.app.outbox.flush_all()

    async def run_events(self, events: list[Event], msg_id: str | None = None) -> None:
        """Play events without the final flush (tests continue the conversation)."""
        for ev in events:
            if isinstance(ev, Directive):
                await self._directive(ev)
                continue
            if not ev.private and self._room is None:
                raise TranscriptError(ev.line_no, "a room message before any @room line")
            await self.advance_to(self.clock.now())
            room = None if ev.private else self._room
            msg = IncomingMessage(
                id=msg_id or f"replay:{self._digest}:{ev.line_no}", text=ev.text,
                sender_id=member_id(ev.name), sender_name=ev.name, at=self.clock.now(),
                room_id=f"replay:room:{room}" if room else None, room_name=room,
                sender_is_owner=room is not None and (room, ev.name) in self._leaders,
                mentioned=tuple((member_id(n), n) for n in mentions(ev.text)),
            )
            await self.deliver(msg)
            self.clock.advance(1)

    async def deliver(self, msg: IncomingMessage) -> None:
        """Hand one message to the bot (a subclass may route it through a transport)."""
        await self.app.dispatcher.dispatch(msg)

    async def _directive(self, ev: Directive) -> None:
        if ev.kind == "room":
            self._room = ev.value
        elif ev.kind == "leader":
            if self._room is None:
                raise TranscriptError(ev.line_no, "@leader before any @room line")
            self._leaders.add((self._room, ev.value))
        else:
            try:
                when = datetime.strptime(ev.value, "%Y-%m-%d %H:%M").replace(
                    tzinfo=self.app.settings.tz)
            except ValueError as exc:
                raise TranscriptError(ev.line_no, "expected '@now YYYY-MM-DD HH:MM'") from exc
            if when < self.clock.now():
                raise TranscriptError(ev.line_no, "@now moves the clock backwards")
            await self.advance_to(when)


async def replay_text(raw: str, settings: Settings, database_url: str,
                      out: TextIO = sys.stdout) -> App:
    """Replay a transcript's text and print the bot's messages to ``out``."""
    events = parse_transcript(raw)
    start = datetime(2000, 1, 1, tzinfo=settings.tz)
    first_now = next((e for e in events if isinstance(e, Directive) and e.kind == "now"), None)
    if first_now is not None:
        try:
            start = datetime.strptime(first_now.value, "%Y-%m-%d %H:%M").replace(tzinfo=settings.tz)
        except ValueError as exc:
            raise TranscriptError(first_now.line_no, "expected '@now YYYY-MM-DD HH:MM'") from exc
    clock = ManualClock(start)
    scheduler = VirtualScheduler()
    adapter = ReplayAdapter(out)
    app = build_app(settings, clock, adapter.send, scheduler, database_url)
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:10]
    try:
        await Replay(app, clock, scheduler, digest).run(events)
    finally:
        app.engine.dispose()
    return app
