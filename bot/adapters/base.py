"""The one transport seam."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.types import IncomingMessage, OutgoingMessage

MessageCallback = Callable[[IncomingMessage], Awaitable[None]]
# The bot's account was added to a room: (room platform id, room name).
JoinCallback = Callable[[str, str], Awaitable[None]]


class ChatAdapter(Protocol):
    """A chat transport: delivers inbound messages, sends the bot's messages."""

    async def start(self, on_message: MessageCallback, *,
                    on_joined: JoinCallback | None = None) -> None:
        """Connect and start delivering messages to ``on_message`` (and, where the platform
        tells, the rooms the bot is added to, to ``on_joined``)."""

    async def stop(self) -> None:
        """Disconnect."""

    async def send(self, message: OutgoingMessage) -> None:
        """Send a message to a room (with @mentions) or to a person."""
