"""What crosses the transport seam, and what handlers hand to the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal


@dataclass(frozen=True)
class IncomingMessage:
    """One chat message as any transport delivers it.

    Attributes:
        id: The platform's message id (unique; a redelivered message has the same id).
        text: The text as delivered (quote-reply block and @mentions included).
        sender_id: The platform's stable id of the sender.
        sender_name: The sender's display name.
        room_id: The platform id of the group, or None for a private message.
        room_name: The group's name.
        at: When it was sent (tz-aware).
        sender_is_owner: Whether the sender owns the room (a leader by right).
        mentioned: The people @-mentioned, as the transport resolved them.
    """

    id: str
    text: str
    sender_id: str
    sender_name: str
    at: datetime
    room_id: str | None = None
    room_name: str | None = None
    sender_is_owner: bool = False
    mentioned: tuple[tuple[str, str], ...] = ()  # (platform id, display name) of @mentions


@dataclass(frozen=True)
class Reply:
    """A bot message to send now: a template and its data, for a room or a person."""

    template: str
    data: Mapping[str, Any]
    room_id: str | None = None
    room_name: str | None = None
    to_id: str | None = None
    to_name: str | None = None
    mentions: tuple[str, ...] = ()  # display names, written into the text as @NAME


@dataclass(frozen=True)
class DealProgress:
    """A snapshot of a deal's progress after a change, shown in the coalesced ack."""

    deal_id: int
    title: str
    counted: Decimal
    threshold: Decimal | None
    unit: str
    stock_left: Decimal | None


@dataclass(frozen=True)
class Ack:
    """One acknowledgement the outbox coalesces with others of the same room.

    ``kind`` is added / changed / cancelled / refused / question / milestone; ``data`` holds
    what the ack template shows for it.
    """

    kind: Literal["added", "changed", "cancelled", "refused", "question", "milestone"]
    room_id: str
    room_name: str
    data: Mapping[str, Any]
    progress: DealProgress | None = None
    to_id: str | None = None  # set for a private chat: acks go back to the person
    to_name: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    """Rendered text ready for a transport.

    ``receipt``, when set, is awaited once the message has been handed to the platform (or
    has failed for good): the outbox then forgets the acknowledgements it carries.
    """

    text: str
    room_id: str | None = None
    room_name: str | None = None
    to_id: str | None = None
    to_name: str | None = None
    mentions: tuple[str, ...] = field(default=())
    receipt: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)
