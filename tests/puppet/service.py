"""A fake wechaty puppet service: the ``wechaty.Puppet`` gRPC service on 127.0.0.1.

It speaks the wire protocol of wechaty-grpc 0.20 (the messages the SDK's PuppetStub
sends and expects) with grpclib, holds contacts, rooms and messages, pushes events down
the Event stream and records what the bot sends. ``PuppetDriver`` is the test-facing side.

Wire facts it follows (and the SDK relies on):

* MessagePayloadResponse.type carries the *puppet* message type (Text = 7, GroupNote = 10);
  the SDK remaps it to wechaty-grpc's enum (Text → 6, GroupNote → UNSPECIFIED).
* Event payloads are camelCase JSON: {"messageId": …}, {"contactId": …},
  {"roomId": …, "inviteeIdList": […], "inviterId": …, "timestamp": …}.
* MessageSendTextRequest spells its mention field ``mentonal_ids``.
* A new Event stream of a logged-in account starts with a login event.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream
from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.wechaty_compat import WIRE_GROUP_NOTE, WIRE_TEXT

EVENT_MESSAGE = int(pb.EventType.EVENT_TYPE_MESSAGE)
EVENT_LOGIN = int(pb.EventType.EVENT_TYPE_LOGIN)
EVENT_ROOM_JOIN = int(pb.EventType.EVENT_TYPE_ROOM_JOIN)
EVENT_DONG = int(pb.EventType.EVENT_TYPE_DONG)
EVENT_HEARTBEAT = int(pb.EventType.EVENT_TYPE_HEARTBEAT)


@dataclass
class FakeContact:
    id: str
    name: str
    alias: str = ""  # the account's remark for the contact (not the room alias)


@dataclass
class FakeRoom:
    id: str
    topic: str
    owner_id: str = ""
    member_ids: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # member id -> room alias (群昵称)


@dataclass(frozen=True)
class Sent:
    """One MessageSendText call: where, what, and the ids it @-mentions."""

    id: str
    conversation_id: str
    text: str
    mention_ids: tuple[str, ...]
    room_id: str | None
    to_id: str | None
    at: float = 0.0  # time.monotonic() when the service received it (pacing tests)


def _ms(at: datetime | None) -> int:
    return int((at or datetime.now().astimezone()).timestamp() * 1000)


class FakePuppetService:
    """The gRPC side. All state is plain attributes; the driver mutates it."""

    def __init__(self, *, echo_sent: bool = False) -> None:
        self.contacts: dict[str, FakeContact] = {}
        self.rooms: dict[str, FakeRoom] = {}
        self.messages: dict[str, pb.MessagePayloadResponse] = {}
        self.sent: list[Sent] = []
        self.self_id: str | None = None
        self.echo_sent = echo_sent  # push the bot's own messages back as events (as WeChat does)
        self.strangers: set[str] = set()  # contact ids without a ContactPayload (not friends)
        self.ding_hangs = False  # Ding never answers (a half-dead service)
        self.calls: Counter[str] = Counter()
        self.payload_requests: Counter[str] = Counter()  # MessagePayload calls per message id
        self.streams_opened = 0
        self.delivered: list[pb.EventResponse] = []  # events written to a stream, in order
        self._backlog: deque[pb.EventResponse] = deque()
        self._generation = 0  # bumped by drop_stream(): the open stream ends
        self._drop_error = False
        self._drop_after: tuple[int, int, bool] | None = None
        self._streams_open = 0
        self._changed = asyncio.Event()
        self._sent_changed = asyncio.Event()
        self._streams_changed = asyncio.Event()
        self._closing = False
        self._ids = itertools.count(1)

    # -- state helpers -----------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def push(self, event_type: int, payload: dict[str, Any]) -> None:
        """Queue an event for the open (or next) Event stream."""
        self._backlog.append(pb.EventResponse(type=event_type, payload=json.dumps(payload)))
        self._changed.set()

    def drop_stream(self, *, redeliver: int = 0, error: bool = False) -> None:
        """End the open Event stream (cleanly, or with UNAVAILABLE when ``error``).

        The next stream starts with login, then the last ``redeliver`` message events already
        delivered, then everything not delivered yet.
        """
        if redeliver:
            again = [e for e in self.delivered if int(e.type) == EVENT_MESSAGE][-redeliver:]
            self._backlog.extendleft(reversed(again))
        self._generation += 1
        self._drop_error = error
        self._changed.set()

    def drop_after(self, messages: int, *, redeliver: int = 0, error: bool = False) -> None:
        """Drop the stream (as drop_stream) once it has delivered ``messages`` message events."""
        self._drop_after = (messages, redeliver, error)

    def close(self) -> None:
        self._closing = True
        self._generation += 1
        self._changed.set()

    @property
    def stream_open(self) -> bool:
        return self._streams_open > 0

    async def wait_sent(self, count: int) -> list[Sent]:
        while len(self.sent) < count:
            self._sent_changed.clear()
            await self._sent_changed.wait()
        return self.sent

    async def wait_for_sent(self, match: Callable[[Sent], bool]) -> Sent:
        """The first message the bot sent that ``match`` accepts (waits for it)."""
        while True:
            found = next((s for s in self.sent if match(s)), None)
            if found is not None:
                return found
            self._sent_changed.clear()
            await self._sent_changed.wait()

    async def wait_streams(self, count: int) -> None:
        while self.streams_opened < count:
            self._streams_changed.clear()
            await self._streams_changed.wait()

    # -- gRPC ----------------------------------------------------------------------------

    def __mapping__(self) -> dict[str, Handler]:
        unary: dict[str, tuple[type, type, Callable[[Any], Awaitable[Any]]]] = {
            "Start": (pb.StartRequest, pb.StartResponse, self._start),
            "Stop": (pb.StopRequest, pb.StopResponse, self._stop),
            "Logout": (pb.LogoutRequest, pb.LogoutResponse, self._logout),
            "Ding": (pb.DingRequest, pb.DingResponse, self._ding),
            "Version": (pb.VersionRequest, pb.VersionResponse, self._version),
            "DirtyPayload": (pb.DirtyPayloadRequest, pb.DirtyPayloadResponse, self._empty),
            "ContactList": (pb.ContactListRequest, pb.ContactListResponse, self._contact_list),
            "ContactPayload": (pb.ContactPayloadRequest, pb.ContactPayloadResponse,
                               self._contact_payload),
            "RoomList": (pb.RoomListRequest, pb.RoomListResponse, self._room_list),
            "RoomPayload": (pb.RoomPayloadRequest, pb.RoomPayloadResponse, self._room_payload),
            "RoomMemberList": (pb.RoomMemberListRequest, pb.RoomMemberListResponse,
                               self._room_member_list),
            "RoomMemberPayload": (pb.RoomMemberPayloadRequest, pb.RoomMemberPayloadResponse,
                                  self._room_member_payload),
            "MessagePayload": (pb.MessagePayloadRequest, pb.MessagePayloadResponse,
                               self._message_payload),
            "MessageSendText": (pb.MessageSendTextRequest, pb.MessageSendTextResponse,
                                self._message_send_text),
        }
        mapping = {f"/wechaty.Puppet/{name}": Handler(self._unary(name, fn, resp),
                                                      Cardinality.UNARY_UNARY, req, resp)
                   for name, (req, resp, fn) in unary.items()}
        mapping["/wechaty.Puppet/Event"] = Handler(self._event, Cardinality.UNARY_STREAM,
                                                   pb.EventRequest, pb.EventResponse)
        return mapping

    def _unary(self, name: str, fn: Callable[[Any], Awaitable[Any]], resp: type
               ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        async def handle(stream: Stream[Any, Any]) -> None:
            request = await stream.recv_message()
            self.calls[name] += 1
            reply = await fn(request)
            await stream.send_message(reply if reply is not None else resp())
        return handle

    async def _event(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        self.calls["Event"] += 1
        self.streams_opened += 1
        self._streams_open += 1
        self._streams_changed.set()
        generation = self._generation
        try:
            if self.self_id:
                await stream.send_message(pb.EventResponse(
                    type=EVENT_LOGIN, payload=json.dumps({"contactId": self.self_id})))
            messages = 0
            while True:
                while self._backlog and generation == self._generation:
                    event = self._backlog.popleft()
                    await stream.send_message(event)
                    self.delivered.append(event)
                    messages += int(event.type) == EVENT_MESSAGE
                    if self._drop_after is not None and messages >= self._drop_after[0]:
                        _, redeliver, error = self._drop_after
                        self._drop_after = None
                        self.drop_stream(redeliver=redeliver, error=error)
                if generation != self._generation or self._closing:
                    if self._drop_error and not self._closing:
                        self._drop_error = False
                        raise GRPCError(Status.UNAVAILABLE, "event stream dropped by the test")
                    return
                self._changed.clear()
                await self._changed.wait()
        finally:
            self._streams_open -= 1

    async def _empty(self, request: Any) -> None:
        return None

    async def _start(self, request: pb.StartRequest) -> None:
        return None

    async def _stop(self, request: pb.StopRequest) -> None:
        return None

    async def _logout(self, request: pb.LogoutRequest) -> None:
        self.self_id = None

    async def _ding(self, request: pb.DingRequest) -> None:
        if self.ding_hangs:
            await asyncio.Event().wait()
        self.push(EVENT_DONG, {"data": request.data})

    async def _version(self, request: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(version="fake-0.1")

    async def _contact_list(self, request: Any) -> pb.ContactListResponse:
        return pb.ContactListResponse(ids=list(self.contacts))

    async def _contact_payload(self, request: pb.ContactPayloadRequest) -> pb.ContactPayloadResponse:
        contact = self.contacts.get(request.id)
        if contact is None or contact.id in self.strangers:
            raise GRPCError(Status.NOT_FOUND, f"no contact {request.id}")
        return pb.ContactPayloadResponse(id=contact.id, name=contact.name, alias=contact.alias,
                                         type=pb.ContactType.CONTACT_TYPE_PERSONAL, friend=True)

    async def _room_list(self, request: Any) -> pb.RoomListResponse:
        return pb.RoomListResponse(ids=list(self.rooms))

    async def _room_payload(self, request: pb.RoomPayloadRequest) -> pb.RoomPayloadResponse:
        room = self.rooms.get(request.id)
        if room is None:
            raise GRPCError(Status.NOT_FOUND, f"no room {request.id}")
        return pb.RoomPayloadResponse(id=room.id, topic=room.topic, owner_id=room.owner_id,
                                      member_ids=list(room.member_ids))

    async def _room_member_list(self, request: pb.RoomMemberListRequest) -> pb.RoomMemberListResponse:
        room = self.rooms.get(request.id)
        if room is None:
            raise GRPCError(Status.NOT_FOUND, f"no room {request.id}")
        return pb.RoomMemberListResponse(member_ids=list(room.member_ids))

    async def _room_member_payload(self, request: pb.RoomMemberPayloadRequest
                                   ) -> pb.RoomMemberPayloadResponse:
        room = self.rooms.get(request.id)
        contact = self.contacts.get(request.member_id)
        if room is None or contact is None or contact.id not in room.member_ids:
            raise GRPCError(Status.NOT_FOUND, f"{request.member_id} is not in {request.id}")
        return pb.RoomMemberPayloadResponse(id=contact.id, name=contact.name,
                                            room_alias=room.aliases.get(contact.id, ""))

    async def _message_payload(self, request: pb.MessagePayloadRequest) -> pb.MessagePayloadResponse:
        self.payload_requests[request.id] += 1
        message = self.messages.get(request.id)
        if message is None:
            raise GRPCError(Status.NOT_FOUND, f"no message {request.id}")
        return message

    async def _message_send_text(self, request: pb.MessageSendTextRequest
                                 ) -> pb.MessageSendTextResponse:
        sent_id = self.next_id("sent")
        conversation = request.conversation_id
        in_room = conversation in self.rooms
        self.sent.append(Sent(sent_id, conversation, request.text, tuple(request.mentonal_ids),
                              conversation if in_room else None, None if in_room else conversation,
                              time.monotonic()))
        self._sent_changed.set()
        self.messages[sent_id] = pb.MessagePayloadResponse(
            id=sent_id, text=request.text, timestamp=_ms(None), type=WIRE_TEXT,
            from_id=self.self_id or "", room_id=conversation if in_room else "",
            to_id="" if in_room else conversation, mention_ids=list(request.mentonal_ids))
        if self.echo_sent:
            self.push(EVENT_MESSAGE, {"messageId": sent_id})
        return pb.MessageSendTextResponse(id=sent_id)

    # -- messages --------------------------------------------------------------------------

    def add_message(self, *, msg_id: str, from_id: str, text: str, room_id: str | None,
                    at: datetime | None, wire_type: int = WIRE_TEXT,
                    mention_ids: Iterable[str] = ()) -> str:
        """Store a message payload and push its message event."""
        self.messages[msg_id] = pb.MessagePayloadResponse(
            id=msg_id, text=text, timestamp=_ms(at), type=wire_type, from_id=from_id,
            room_id=room_id or "", to_id="" if room_id else (self.self_id or ""),
            mention_ids=list(mention_ids))
        self.push(EVENT_MESSAGE, {"messageId": msg_id})
        return msg_id


__all__ = ["WIRE_GROUP_NOTE", "WIRE_TEXT", "FakeContact", "FakePuppetService", "FakeRoom", "Sent"]
