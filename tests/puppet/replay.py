"""A transcript replayed through the fake puppet service, the real SDK and WechatyAdapter.

Same virtual clock and scheduler as ``tuangou replay`` (``bot.adapters.replay.Replay``);
only ``deliver`` differs: each message becomes a WeChat message of the fake service (room,
sender contact, timestamp = the virtual time, message id = the replay's id), and the replay
goes on once the adapter has dispatched it. The bot's replies go out through the adapter
(MessageSendText); jobs run on the virtual clock as in the plain replay.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.adapters.replay import Directive, Replay, Said, parse_transcript, replay_text
from bot.app import App, build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.export import export_deals
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage
from handlers.parsing.wechat import mentions, parse_jielong

from .driver import PuppetDriver, RunningAdapter


@dataclass
class ReplayResult:
    """What a replay left: the export JSON and the bot's messages as "bot@ROOM" / "bot→NAME"."""

    export: dict[str, Any]
    messages: list[tuple[str, str]]
    xml_jielong: int = 0  # 接龙 messages delivered as type-53 app messages
    received: list[IncomingMessage] = field(default_factory=list)


class PuppetReplay(Replay):
    """Delivers each transcript message through the fake puppet service."""

    def __init__(self, app: App, clock: ManualClock, scheduler: VirtualScheduler, digest: str,
                 driver: PuppetDriver, running: RunningAdapter, *, jielong_as_xml: bool) -> None:
        super().__init__(app, clock, scheduler, digest)
        self.driver = driver
        self.running = running
        self.jielong_as_xml = jielong_as_xml
        self.xml_jielong = 0

    async def deliver(self, msg: IncomingMessage) -> None:
        d = self.driver
        if msg.room_name is None:
            d.say(None, msg.sender_name, msg.text, msg_id=msg.id, at=msg.at)
        elif self.jielong_as_xml and (jl := parse_jielong(msg.text)) is not None and jl.entries:
            d.say_jielong(msg.room_name, msg.sender_name, msg.text, msg_id=msg.id, at=msg.at)
            self.xml_jielong += 1
        else:
            room = d.room(msg.room_name)
            members = {d.service.contacts[i].name for i in room.member_ids}
            d.say(room, msg.sender_name, msg.text, msg_id=msg.id, at=msg.at,
                  mention=[n for n in mentions(msg.text) if n in members])
        outcome = await self.running.outcome(msg.id)
        if outcome != "dispatched":
            raise AssertionError(f"message {msg.id} ({msg.text!r}) was {outcome}, not dispatched")


def _first_now(events: list[Directive | Said], settings: Settings) -> datetime:
    first = next((e for e in events if isinstance(e, Directive) and e.kind == "now"), None)
    if first is None:
        return datetime(2000, 1, 1, tzinfo=settings.tz)
    return datetime.strptime(first.value, "%Y-%m-%d %H:%M").replace(tzinfo=settings.tz)


def setup_transcript(driver: PuppetDriver, events: list[Directive | Said], settings: Settings
                     ) -> Settings:
    """Contacts and rooms for a transcript; returns the settings to run it with.

    A room's first ``@leader`` is its owner (RoomPayload.owner_id); further leaders go into
    ``Settings.leaders``. Everyone who speaks or is @-mentioned in a room is a member.
    """
    rooms: dict[str, tuple[list[str], list[str]]] = {}  # topic -> (leaders, members)
    current: str | None = None
    for ev in events:
        if isinstance(ev, Directive) and ev.kind == "room":
            current = ev.value
            rooms.setdefault(current, ([], []))
        elif isinstance(ev, Directive) and ev.kind == "leader" and current is not None:
            if ev.value not in rooms[current][0]:
                rooms[current][0].append(ev.value)
        elif isinstance(ev, Said):
            if ev.private or current is None:
                driver.contact(ev.name)
                continue
            for name in [ev.name, *mentions(ev.text)]:
                if name not in rooms[current][1]:
                    rooms[current][1].append(name)
    driver.login(settings.bot_name)
    leaders = dict(settings.leaders)
    for topic, (room_leaders, members) in rooms.items():
        room = driver.add_room(topic, [*members, *room_leaders],
                               owner=room_leaders[0] if room_leaders else None)
        driver.add_member(room, driver.bot_id)
        if len(room_leaders) > 1:
            leaders[topic] = tuple(dict.fromkeys([*leaders.get(topic, ()), *room_leaders[1:]]))
    return driver.settings(settings, leaders=leaders)


async def replay_through_puppet(raw: str, settings: Settings, database_url: str,
                                driver: PuppetDriver, *, jielong_as_xml: bool = True) -> ReplayResult:
    """Replay a transcript through fake service + SDK + WechatyAdapter on a virtual clock."""
    events = parse_transcript(raw)
    wsettings = setup_transcript(driver, events, settings)
    clock = ManualClock(_first_now(events, settings))
    scheduler = VirtualScheduler()
    apps: list[App] = []

    async def dispatch(msg: IncomingMessage) -> None:
        await apps[0].dispatcher.dispatch(msg)

    async with driver.adapter(wsettings, dispatch) as running:
        app = build_app(wsettings, clock, running.adapter.send, scheduler, database_url)
        apps.append(app)
        try:
            digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:10]
            replay = PuppetReplay(app, clock, scheduler, digest, driver, running,
                                  jielong_as_xml=jielong_as_xml)
            await replay.run(events)
            with app.sessions() as session:
                export = export_deals(session, wsettings, None)
        finally:
            app.engine.dispose()
    rooms = {r.id: r.topic for r in driver.service.rooms.values()}
    names = {c.id: c.name for c in driver.service.contacts.values()}
    messages = [(f"bot@{rooms[s.room_id]}" if s.room_id else f"bot→{names.get(s.to_id or '', s.to_id)}",
                 normalize_sent(s.text)) for s in driver.sent]
    return ReplayResult(export, messages, replay.xml_jielong, list(running.received))


def normalize_sent(text: str) -> str:
    """A sent text as the plain replay prints it: "@NAME\u2005" back to "@NAME "."""
    return "\n".join(line.replace("\u2005", " ").rstrip() for line in text.split("\n"))


async def plain_replay(raw: str, settings: Settings, database_url: str) -> ReplayResult:
    """``tuangou replay`` of a transcript: its export JSON and its printed bot messages."""
    out = io.StringIO()
    app = await replay_text(raw, settings, database_url, out=out)
    try:
        with app.sessions() as session:
            export = export_deals(session, settings, None)
    finally:
        app.engine.dispose()
    return ReplayResult(export, parse_printed(out.getvalue()))


def parse_printed(output: str) -> list[tuple[str, str]]:
    """The replay's printed messages as (head, text)."""
    messages: list[tuple[str, str]] = []
    for line in output.splitlines():
        if (line.startswith("| ") or line == "|") and messages:
            head, text = messages[-1]
            messages[-1] = (head, text + "\n" + line[2:])
            continue
        m = re.match(r"^(bot@.+?|bot→.+?): (.*)$", line)
        if m:
            messages.append((m.group(1), m.group(2)))
    return [(head, normalize_sent(text)) for head, text in messages]

