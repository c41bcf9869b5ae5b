"""The test-facing side of the fake puppet service: ``fake_puppet()`` and ``PuppetDriver``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from grpclib.server import Server

from bot.adapters import wechaty_compat
from bot.adapters.wechat import WechatyAdapter
from bot.config import Settings
from bot.types import IncomingMessage

from .appmsg import ENTRY_LINE, jielong_xml, quote_xml
from .service import (
    EVENT_LOGIN,
    EVENT_ROOM_JOIN,
    WIRE_GROUP_NOTE,
    FakeContact,
    FakePuppetService,
    FakeRoom,
    Sent,
)

Who = FakeContact | str  # a contact, its id or its name
Where = FakeRoom | str  # a room, its id or its topic

# Fast reconnects and a short watchdog: tests drop streams on purpose.
ADAPTER_OPTIONS: dict[str, Any] = {"connect_timeout": 10.0, "send_timeout": 10.0,
                                   "heartbeat_seconds": 30.0, "reconnect_min": 0.05,
                                   "reconnect_max": 0.5}


class RunningAdapter:
    """A started WechatyAdapter and what it delivered to its callback."""

    def __init__(self, adapter: WechatyAdapter) -> None:
        self.adapter = adapter
        self.received: list[IncomingMessage] = []
        self.calls: Counter[str] = Counter()  # on_message calls per message id
        self._changed = asyncio.Event()

    def _seen(self, msg: IncomingMessage) -> None:
        self.received.append(msg)
        self.calls[msg.id] += 1
        self._changed.set()

    async def wait_received(self, count: int, seconds: float = 10.0) -> list[IncomingMessage]:
        """Wait until ``count`` messages reached the callback."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.received

    async def outcome(self, msg_id: str, seconds: float = 10.0) -> str:
        """Wait until the adapter is done with a message: dispatched, ignored:WHY or failed."""
        async with asyncio.timeout(seconds):
            return await self.adapter.wait_outcome(msg_id)


class PuppetDriver:
    """Drives a FakePuppetService from a test (see the package docstring)."""

    def __init__(self, service: FakePuppetService, endpoint: str) -> None:
        self.service = service
        self.endpoint = endpoint

    # -- people and rooms --------------------------------------------------------------------

    @property
    def sent(self) -> list[Sent]:
        """Every MessageSendText the bot made, in order."""
        return self.service.sent

    @property
    def bot_id(self) -> str:
        assert self.service.self_id, "login() first"
        return self.service.self_id

    def add_contact(self, name: str, *, id: str | None = None, alias: str = "") -> FakeContact:
        contact = FakeContact(id or self.service.next_id("wxid"), name, alias)
        self.service.contacts[contact.id] = contact
        return contact

    def contact(self, who: Who) -> FakeContact:
        """A contact by object, id or name (a new name makes a new contact)."""
        if isinstance(who, FakeContact):
            return who
        if who in self.service.contacts:
            return self.service.contacts[who]
        found = next((c for c in self.service.contacts.values() if c.name == who), None)
        return found or self.add_contact(who)

    def add_room(self, topic: str, members: Iterable[Who] = (), *, owner: Who | None = None,
                 id: str | None = None, aliases: Mapping[str, str] | None = None) -> FakeRoom:
        """A room with members (names or contacts); ``aliases``: name or id -> 群昵称."""
        room = FakeRoom(id or self.service.next_id("room") + "@chatroom", topic)
        self.service.rooms[room.id] = room
        for who in members:
            self.add_member(room, who)
        if owner is not None:
            room.owner_id = self.add_member(room, owner).id
        for who, alias in (aliases or {}).items():
            room.aliases[self.contact(who).id] = alias
        return room

    def room(self, where: Where) -> FakeRoom:
        if isinstance(where, FakeRoom):
            return where
        if where in self.service.rooms:
            return self.service.rooms[where]
        return next(r for r in self.service.rooms.values() if r.topic == where)

    def add_member(self, where: Where, who: Who, *, alias: str = "") -> FakeContact:
        room, contact = self.room(where), self.contact(who)
        if contact.id not in room.member_ids:
            room.member_ids.append(contact.id)
        if alias:
            room.aliases[contact.id] = alias
        return contact

    # -- events ------------------------------------------------------------------------------

    def login(self, name: str = "团购助手", *, id: str = "wxid-bot") -> FakeContact:
        """Log the bot's account in (a login event now, and at the start of every stream)."""
        me = self.add_contact(name, id=id) if id not in self.service.contacts else self.contact(id)
        self.service.self_id = me.id
        if self.service.stream_open:
            self.service.push(EVENT_LOGIN, {"contactId": me.id})
        return me

    def bot_joins(self, where: Where, *, inviter: Who | None = None, at: datetime | None = None) -> None:
        """Someone adds the bot to a room: it becomes a member and a room-join event follows."""
        room = self.room(where)
        self.add_member(room, self.bot_id)
        inviter_id = self.contact(inviter).id if inviter is not None else (room.owner_id or self.bot_id)
        when = (at or datetime.now().astimezone()).timestamp()
        self.service.push(EVENT_ROOM_JOIN, {"roomId": room.id, "inviteeIdList": [self.bot_id],
                                            "inviterId": inviter_id, "timestamp": int(when)})

    def say(self, where: Where | None, who: Who, text: str, *, msg_id: str | None = None,
            at: datetime | None = None, mention: Iterable[Who] = ()) -> str:
        """A text message in a room (``where=None``: privately to the bot); returns its id.

        ``mention`` lists the people WeChat puts in the payload's mention ids (the text
        should say "@NAME\\u2005" for them, as WeChat writes it).
        """
        room = self.room(where) if where is not None else None
        contact = self.add_member(room, who) if room is not None else self.contact(who)
        return self.service.add_message(
            msg_id=msg_id or self.service.next_id("msg"), from_id=contact.id, text=text,
            room_id=room.id if room else None, at=at,
            mention_ids=[self.contact(m).id for m in mention])

    def say_xml(self, where: Where | None, who: Who, xml: str, *, wire_type: int = WIRE_GROUP_NOTE,
                msg_id: str | None = None, at: datetime | None = None) -> str:
        """An app message (XML content) with the given puppet message type."""
        room = self.room(where) if where is not None else None
        contact = self.add_member(room, who) if room is not None else self.contact(who)
        return self.service.add_message(
            msg_id=msg_id or self.service.next_id("msg"), from_id=contact.id, text=xml,
            room_id=room.id if room else None, at=at, wire_type=wire_type)

    def say_jielong(self, where: Where, who: Who, title: str, *,
                    authors: Iterable[Who | None] | None = None, msg_id: str | None = None,
                    at: datetime | None = None, with_ranges: bool = True) -> str:
        """A native 接龙 (type 53) whose list reads ``title``; ``authors``: one per numbered
        line (default: the member whose name starts the line, else the sender)."""
        room = self.room(where)
        sender = self.add_member(room, who)
        if authors is None:
            ids = [self._author_of(room, line, sender) for line in _entry_texts(title)]
        else:
            ids = [self.contact(a).id if a is not None else None for a in authors]
        xml = jielong_xml(title, ids, sender_id=sender.id, creator_id=ids[0] if ids and ids[0] else sender.id,
                          timestamp=int((at or datetime.now().astimezone()).timestamp()),
                          with_ranges=with_ranges)
        return self.say_xml(room, sender, xml, msg_id=msg_id, at=at)

    def say_quote(self, where: Where, who: Who, reply: str, *, quoted: Who, quoted_text: str,
                  msg_id: str | None = None, at: datetime | None = None) -> str:
        """A quote-reply as app message type 57 (XML), as some puppets deliver it."""
        q = self.contact(quoted)
        xml = quote_xml(reply, quoted_name=q.name, quoted_text=quoted_text, quoted_sender_id=q.id)
        return self.say_xml(where, who, xml, wire_type=1, msg_id=msg_id, at=at)

    def _author_of(self, room: FakeRoom, line: str, sender: FakeContact) -> str:
        names = [(self.service.contacts[i].name, i) for i in room.member_ids if i in self.service.contacts]
        names += [(alias, i) for i, alias in room.aliases.items()]
        hits = [(len(n), i) for n, i in names if n and line.startswith(n)]
        return max(hits)[1] if hits else sender.id

    def drop_stream(self, *, redeliver: int = 0, error: bool = False) -> None:
        """End the event stream now; the next one redelivers the last ``redeliver`` messages."""
        self.service.drop_stream(redeliver=redeliver, error=error)

    async def wait_streams(self, count: int, seconds: float = 10.0) -> None:
        """Wait until ``count`` Event streams have been opened (1 + reconnects)."""
        async with asyncio.timeout(seconds):
            await self.service.wait_streams(count)

    async def wait_sent(self, count: int, seconds: float = 10.0) -> list[Sent]:
        """Wait until the bot has sent ``count`` messages."""
        async with asyncio.timeout(seconds):
            return await self.service.wait_sent(count)

    async def wait_for_sent(self, match: Callable[[Sent], bool] | str, seconds: float = 10.0) -> Sent:
        """The first message the bot sent that ``match`` accepts (a str: the text contains it)."""
        test = (lambda s: match in s.text) if isinstance(match, str) else match
        async with asyncio.timeout(seconds):
            return await self.service.wait_for_sent(test)

    # -- the adapter -------------------------------------------------------------------------

    def settings(self, base: Settings | None = None, **changes: Any) -> Settings:
        """Settings pointing at this service (any token: the fake checks none)."""
        return replace(base or Settings(), wechaty_endpoint=self.endpoint,
                       wechaty_token="fake-token", **changes)

    @asynccontextmanager
    async def adapter(self, settings: Settings | None = None,
                      on_message: Callable[[IncomingMessage], Awaitable[None]] | None = None,
                      **options: Any) -> AsyncIterator[RunningAdapter]:
        """A started WechatyAdapter against this service, stopped on exit."""
        adapter = WechatyAdapter(settings or self.settings(), **{**ADAPTER_OPTIONS, **options})
        running = RunningAdapter(adapter)

        async def deliver(msg: IncomingMessage) -> None:
            if on_message is not None:
                await on_message(msg)
            running._seen(msg)

        await adapter.start(deliver)
        try:
            yield running
        finally:
            await adapter.stop()


def _entry_texts(title: str) -> list[str]:
    return [m.group(2) for line in title.split("\n") if (m := ENTRY_LINE.match(line))]


@asynccontextmanager
async def fake_puppet(*, echo_sent: bool = False) -> AsyncIterator[PuppetDriver]:
    """A fake puppet service on 127.0.0.1 (a free port), with the SDK's caches reset."""
    wechaty_compat.reset_sdk_caches()
    service = FakePuppetService(echo_sent=echo_sent)
    server = Server([service])
    await server.start("127.0.0.1", 0)
    assert server._server is not None
    port = server._server.sockets[0].getsockname()[1]
    try:
        yield PuppetDriver(service, f"127.0.0.1:{port}")
    finally:
        service.close()
        server.close()
        await server.wait_closed()
        wechaty_compat.reset_sdk_caches()


__all__ = ["PuppetDriver", "RunningAdapter", "fake_puppet"]
