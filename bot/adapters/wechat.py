"""Real WeChat through python-wechaty and a wechaty puppet service (gRPC).

The SDK is imported through :mod:`bot.adapters.wechaty_compat` (its shims); nothing outside
``bot/adapters/`` touches it. The adapter uses the SDK's puppet service client, its
``Message`` / ``Room`` / ``Contact`` classes and their payload caches, but runs the
connection itself instead of ``Wechaty.start()``, which never returns while connected,
swallows errors and sleeps 60 s before a restart:

* one session = init_puppet + PuppetService.start() (Start RPC, then the event stream until
  it ends); when it ends or fails the adapter reconnects with backoff, and a watchdog pings
  a silent service (Ding) and reconnects when it does not answer;
* puppet events are taken synchronously in stream order into one queue; a single worker
  turns them into ``IncomingMessage`` and hands them to the callback in that order (the
  SDK's own bridge runs one task per message, so a burst would be handled out of order).
  It does not wait for one message to be handled before reading the next (up to
  ``IN_FLIGHT`` at once): in a burst, those that queue up are handled together;
* message ids already handled (a bounded set) are skipped, so a service that redelivers
  recent messages after a reconnect does not make the bot answer twice (the dispatcher
  dedupes by message id in the database as well);
* an exception while handling one event is logged and the adapter goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.adapters import wechaty_compat
from bot.adapters.base import JoinCallback, MessageCallback
from bot.config import Settings
from bot.types import IncomingMessage, OutgoingMessage
from handlers.parsing.wechat import mentions as text_mentions

log = logging.getLogger(__name__)

AT_SEPARATOR = "\u2005"  # what WeChat writes after "@NAME"
SEEN_LIMIT = 10_000  # message ids remembered against redelivery
IN_FLIGHT = 32  # messages handed to the callback and not yet handled, at most
MAX_XML = 200_000  # app messages longer than this are not parsed
_MS_THRESHOLD = 2145888000  # larger timestamps are milliseconds (as the SDK reads them)
_QUOTE_RULE = "- - - - - - - - - - - - - - -"


# --- app messages (XML) -----------------------------------------------------------------------

def _xml_root(raw: str) -> ET.Element | None:
    """The XML of an app message, without the "wxid_x:\\n" prefix rooms put before it."""
    text = raw.strip()
    start = text.find("<")
    if start < 0 or len(text) > MAX_XML:
        return None
    prefix = text[:start]
    if prefix and not re.fullmatch(r"[\w@.\-]{1,80}:\s*", prefix):
        return None
    try:
        return ET.fromstring(text[start:])
    except ET.ParseError:
        return None


def _app_msg(raw: str) -> ET.Element | None:
    root = _xml_root(raw)
    if root is None:
        return None
    return root if root.tag == "appmsg" else root.find("appmsg")


def _utf16_slice(text: str, start: int, length: int) -> str | None:
    """WeChat's solitaire ranges count UTF-16 code units (emoji are two)."""
    data = text.encode("utf-16-le")
    if start < 0 or length < 0 or 2 * (start + length) > len(data):
        return None
    try:
        return data[2 * start:2 * (start + length)].decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def _range(value: str | None) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*(\d+)-(\d+)\s*", value or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class SolitaireEntry:
    """One line of a native 接龙: its number, its text and who wrote it (if known)."""

    no: int
    text: str
    author_id: str | None = None


@dataclass(frozen=True)
class Solitaire:
    """A native 接龙 (app message type 53) as read from its XML."""

    header: tuple[str, ...]
    entries: tuple[SolitaireEntry, ...]
    creator_id: str | None = None


_ENTRY_LINE = re.compile(r"^\s*(\d{1,4})\s*[.、．)）]\s*(.*)$")
_LOOSE_ENTRY_LINE = re.compile(r"^\s*(\d{1,3})\s+(\S.*)$")


def read_solitaire(raw: str) -> Solitaire | None:
    """Read WeChat's native 接龙 app message, or None when ``raw`` is not one.

    The shape (``<msg><appmsg>``): ``<type>53</type>``; ``<title>`` holds the whole list as
    text ("#接龙" line, the topic, an empty line, "1. 小雨 2盒" …); ``<extinfo><solitaire_info>``
    holds, as escaped XML, ``<solitaire>`` with ``<tt>`` (the header's range in the title),
    ``<au>`` (who started it) and ``<content>`` with one ``<i>`` per line: ``<u>`` its
    author's id and ``<r>`` its text's range in the title ("offset-length", UTF-16 units).
    When the ranges are missing or do not fit, the lines are read from the title alone.
    """
    app = _app_msg(raw)
    if app is None or (app.findtext("type") or "").strip() != "53":
        return None
    title = app.findtext("title") or ""
    info = None
    info_text = app.findtext("extinfo/solitaire_info") or ""
    if info_text.strip():
        info = _xml_root(info_text)
        if info is not None and info.tag != "solitaire":
            info = info.find("solitaire")
    creator = None
    if info is not None:
        creator = (info.findtext("au") or "").strip() or None
    header_text: str | None = None
    entries: list[SolitaireEntry] = []
    if info is not None:
        tt = _range(info.findtext("tt"))
        header_text = _utf16_slice(title, *tt) if tt else None
        items = info.findall("content/i")
        ranged: list[SolitaireEntry] = []
        for pos, item in enumerate(items, start=1):
            r = _range(item.findtext("r"))
            text = _utf16_slice(title, *r) if r else None
            if text is None:
                ranged = []
                break
            before = _utf16_slice(title, 0, r[0]) if r else ""
            m = re.search(r"(\d{1,4})\s*[.、．)）]?\s*$", before or "")
            no = int(m.group(1)) if m else pos
            author = (item.findtext("u") or "").strip() or None
            ranged.append(SolitaireEntry(no, " ".join(text.split()), author))
        entries = ranged
    lines = title.split("\n")
    if not entries:
        # No usable ranges: numbered lines are entries, a following unnumbered line
        # continues the entry before it.
        header_lines: list[str] = []
        for line in lines:
            # Once the list has begun, "4 Bella" is a line too (as the text parser reads it).
            m = _ENTRY_LINE.match(line) or (_LOOSE_ENTRY_LINE.match(line) if entries else None)
            if m:
                entries.append(SolitaireEntry(int(m.group(1)), m.group(2).strip()))
            elif entries and line.strip():
                last = entries[-1]
                entries[-1] = SolitaireEntry(last.no, f"{last.text} {line.strip()}".strip(), None)
            elif not entries:
                header_lines.append(line)
        if header_text is None:
            header_text = "\n".join(header_lines)
    elif header_text is None:
        first = next((i for i, line in enumerate(lines) if _ENTRY_LINE.match(line)), len(lines))
        header_text = "\n".join(lines[:first])
    header = []
    for line in header_text.split("\n"):
        line = re.sub(r"[#＃]\s*接龙", " ", line)
        line = re.sub(r"@[^\s@\u2005]{1,32}[\u2005 ]", " ", line)  # "@群主 打卡#接龙"
        line = " ".join(line.split())
        if line and line != "接龙":
            header.append(line)
    return Solitaire(tuple(header), tuple(entries), creator)


def solitaire_text(sol: Solitaire, name_of: Callable[[str], str | None] | None = None) -> str:
    """The plain 接龙 text the parser reads: "#接龙", the topic lines, "", "1. NAME TEXT" lines.

    A line whose text does not start with its author's name gets the name in front
    ("2盒" written by 小雨 → "1. 小雨 2盒"), so the line says whose it is.
    """
    out = ["#接龙", *sol.header, ""]
    for entry in sol.entries:
        text = entry.text
        name = name_of(entry.author_id) if (name_of and entry.author_id) else None
        if name and not text.startswith(name):
            text = f"{name} {text}".strip()
        out.append(f"{entry.no}. {text}")
    return "\n".join(out)


def quote_text(raw: str) -> str | None:
    """A quote-reply delivered as app message type 57, in the text form WeChat shows.

    ``<title>`` is the reply, ``<refermsg>`` the quoted message (``<displayname>``,
    ``<content>``); the result is "「NAME：QUOTED」", the dashed line, then the reply.
    """
    app = _app_msg(raw)
    if app is None or (app.findtext("type") or "").strip() != "57":
        return None
    reply = (app.findtext("title") or "").strip()
    ref = app.find("refermsg")
    if ref is None:
        return reply or None
    name = (ref.findtext("displayname") or "").strip()
    quoted = (ref.findtext("content") or "").strip()
    if quoted.startswith("<") or re.match(r"^[\w@.\-]{1,80}:\n<", quoted):
        inner = _app_msg(quoted)
        quoted = (inner.findtext("title") or "").strip() if inner is not None else ""
    return f"「{name}：{quoted}」\n{_QUOTE_RULE}\n{reply}"


# --- the adapter --------------------------------------------------------------------------------

@dataclass
class _Members:
    """What the adapter knows about one room's members."""

    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> (alias, name)
    complete: bool = False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"[wechaty] endpoint must be HOST:PORT, not {endpoint!r}")
    return host.strip("[]"), int(port)


class WechatyAdapter:
    """A ChatAdapter for a WeChat account logged in by a wechaty puppet service."""

    def __init__(self, settings: Settings, *, connect_timeout: float = 15.0,
                 send_timeout: float = 30.0, heartbeat_seconds: float = 60.0,
                 reconnect_min: float = 0.5, reconnect_max: float = 30.0) -> None:
        if not settings.wechaty_endpoint:
            raise ValueError("[wechaty] endpoint is required (HOST:PORT of the puppet service); "
                             "without one the SDK would look the token up on a discovery "
                             "service that no longer exists")
        if settings.wechaty_tls:
            raise ValueError("[wechaty] tls = true is not supported by the pinned python-wechaty "
                             "0.10.7 (it only speaks plaintext gRPC); run the puppet service "
                             "without TLS (WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true) "
                             "on a private network")
        self._settings = settings
        self._host, self._port = _split_endpoint(settings.wechaty_endpoint)
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._heartbeat = heartbeat_seconds
        self._reconnect = (reconnect_min, reconnect_max)
        self._bot: Any = None
        self._on_message: MessageCallback | None = None
        self._on_joined: JoinCallback | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._members: dict[str, _Members] = {}
        self._self_id: str | None = None
        self._connected = asyncio.Event()
        self._logged_in = asyncio.Event()
        self._last_event = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._delivering: set[asyncio.Future[None]] = set()
        self._session: asyncio.Task[None] | None = None
        self._closing = False
        self._answered = False  # the current session has had an event
        self._outcomes: OrderedDict[str, str] = OrderedDict()
        self._outcome_changed = asyncio.Event()
        self.sessions = 0  # event-stream sessions opened (1 + reconnects)

    # -- ChatAdapter -------------------------------------------------------------------------

    async def start(self, on_message: MessageCallback, *,
                    on_joined: JoinCallback | None = None) -> None:
        """Connect in the background and deliver messages to ``on_message``, and the rooms
        the account is added to to ``on_joined``.

        Returns once the service's event stream has answered, or after ``connect_timeout``
        (then it keeps trying in the background and says so in the log).
        """
        self._on_message = on_message
        self._on_joined = on_joined
        self._closing = False
        sdk = wechaty_compat.load()
        wechaty_compat.skip_blocking_ping(sdk)
        self._bot = sdk.Wechaty(wechaty_compat.options(
            sdk, self._settings.wechaty_endpoint, self._settings.wechaty_token, _free_port()))
        self._tasks = [asyncio.create_task(self._work(), name="wechaty-worker"),
                       asyncio.create_task(self._run(), name="wechaty-connection"),
                       asyncio.create_task(self._watchdog(), name="wechaty-watchdog")]
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError:
            log.warning("wechaty: no answer from the puppet service at %s yet; still trying",
                        self._settings.wechaty_endpoint)

    async def stop(self) -> None:
        """Stop the worker and the connection; what is still queued is not handled."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for delivery in list(self._delivering):
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await delivery
        # No Stop RPC: the service keeps the account logged in for the next start.
        self._connected.clear()

    async def send(self, message: OutgoingMessage) -> None:
        """Post text in a room (with @mentions resolved to members) or to a person.

        Raises:
            ConnectionError: not connected (and logged in) within ``send_timeout``.
        """
        conversation = message.room_id or message.to_id
        if not conversation:
            raise ValueError("an outgoing message needs a room_id or a to_id")
        puppet = await self._ready_puppet()
        text, mention_ids = message.text, list[str]()
        if message.room_id and message.mentions:
            text, mention_ids = await self._write_mentions(message.room_id, message.text,
                                                           message.mentions)
        # PuppetService.message_send_text, not Room.say(): say() writes "@NAME" in front of
        # the text for every mention id, and our templates already wrote them in the text.
        sent_id = await puppet.message_send_text(conversation_id=conversation, message=text,
                                                 mention_ids=mention_ids or None)
        if sent_id:
            self._remember(str(sent_id))

    # -- introspection (tests, operator) -------------------------------------------------------

    @property
    def self_id(self) -> str | None:
        """The logged-in account's contact id."""
        return self._self_id

    @property
    def account_id(self) -> str | None:
        """The account this transport is logged in as (the runtime registers it, so that other
        bot processes in a shared group ignore its posts)."""
        return self._self_id

    def outcome(self, message_id: str) -> str | None:
        """What became of a message id: dispatched, ignored:REASON, duplicate or failed."""
        return self._outcomes.get(message_id)

    async def wait_outcome(self, message_id: str) -> str:
        """Wait until the adapter is done with a message id; returns its outcome (wrap it in
        ``asyncio.timeout``)."""
        while True:
            found = self._outcomes.get(message_id)
            if found is not None:
                return found
            self._outcome_changed.clear()
            await self._outcome_changed.wait()

    # -- connection ------------------------------------------------------------------------

    def _puppet(self) -> Any:
        bot = self._bot
        return None if bot is None else getattr(bot, "_puppet", None)

    async def _run(self) -> None:
        delay = self._reconnect[0]
        while not self._closing:
            self._answered = False
            self._session = asyncio.create_task(self._one_session(), name="wechaty-session")
            try:
                await self._session
                log.warning("wechaty: the event stream ended; reconnecting")
            except asyncio.CancelledError:
                if self._closing:
                    raise
                log.warning("wechaty: the session was reset by the watchdog; reconnecting")
            except Exception as exc:
                log.warning("wechaty: connection to %s failed (%s: %s); retrying in %.1fs",
                            self._settings.wechaty_endpoint, type(exc).__name__, exc, delay)
            finally:
                self._connected.clear()
            if self._answered:
                delay = self._reconnect[0]  # it was up: reconnect quickly, back off after
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect[1])

    async def _one_session(self) -> None:
        # Probe with asyncio first: the SDK's own check is a blocking telnet connect.
        _, writer = await asyncio.wait_for(asyncio.open_connection(self._host, self._port), 10.0)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        bot = self._bot
        await bot.init_puppet()
        wechaty_compat.isolate_pools(bot)
        self._members.clear()
        puppet = bot.puppet
        self._listen(puppet)
        self.sessions += 1
        self._last_event = asyncio.get_running_loop().time()
        try:
            # Start RPC (after a Stop), then reads the event stream until it ends.
            await puppet.start()
        finally:
            self._connected.clear()
            with contextlib.suppress(Exception):
                puppet._event_stream.remove_all_listeners()
            channel = getattr(puppet, "channel", None)
            if channel is not None:
                channel.close()
                puppet.channel = None
            puppet._puppet_stub = None

    async def _watchdog(self) -> None:
        """Ping a silent service; reset the session when it does not answer."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self._heartbeat / 4, 0.05))
            if not self._connected.is_set() or loop.time() - self._last_event < self._heartbeat:
                continue
            puppet = self._puppet()
            if puppet is None:
                continue
            try:
                await asyncio.wait_for(puppet.ding("tuangou"), min(self._heartbeat, 10.0))
                self._last_event = loop.time()
            except Exception as exc:
                log.warning("wechaty: the puppet service does not answer (%s); reconnecting", exc)
                if self._session is not None:
                    self._session.cancel()

    async def _ready_puppet(self) -> Any:
        try:
            await asyncio.wait_for(self._until_ready(), self._send_timeout)
        except TimeoutError as exc:
            raise ConnectionError("wechaty: not connected to the puppet service") from exc
        return self._puppet()

    async def _until_ready(self) -> None:
        while not (self._connected.is_set() and self._logged_in.is_set()):
            await self._connected.wait()
            await self._logged_in.wait()

    # -- events (called synchronously by the SDK, in stream order) ---------------------------

    def _listen(self, puppet: Any) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "login": self._on_login, "logout": self._on_logout, "scan": self._on_scan,
            "message": lambda p: self._queue.put_nowait(("message", p.message_id)),
            "room-join": lambda p: self._queue.put_nowait(("join", p)),
            "room-leave": lambda p: self._queue.put_nowait(("room", p.room_id)),
            "room-topic": lambda p: self._queue.put_nowait(("room", p.room_id)),
            "error": lambda p: log.warning("wechaty: the puppet service reports %s",
                                           getattr(p, "data", p)),
        }
        for event in ("heartbeat", "dong", "ready", "friendship", "room-invite", "reset"):
            handlers.setdefault(event, lambda p: None)
        for event, handler in handlers.items():
            puppet.on(event, self._guard(event, handler))

    def _guard(self, event: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        # A listener that raises would end the SDK's event loop (pyee re-raises into it).
        def listener(payload: Any = None) -> None:
            self._last_event = asyncio.get_running_loop().time()
            self._answered = True
            self._connected.set()
            try:
                handler(payload)
            except Exception:
                log.exception("wechaty: handling the %s event failed", event)
        return listener

    def _on_login(self, payload: Any) -> None:
        if self._self_id != payload.contact_id:
            log.info("wechaty: logged in as %s", payload.contact_id)
        self._self_id = payload.contact_id
        self._logged_in.set()

    def _on_logout(self, payload: Any) -> None:
        log.warning("wechaty: %s logged out (%s)", payload.contact_id, getattr(payload, "data", ""))
        self._logged_in.clear()

    def _on_scan(self, payload: Any) -> None:
        if payload.qrcode:
            log.warning("wechaty: scan to log in: https://wechaty.js.org/qrcode/%s (status %s)",
                        payload.qrcode, payload.status)

    # -- the worker --------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            kind, data = await self._queue.get()
            try:
                if kind == "message":
                    await self._handle_message(str(data))
                elif kind == "join":
                    await self._handle_join(data)
                elif kind == "room":
                    self._forget_room(str(data))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("wechaty: handling a %s event failed", kind)

    def _remember(self, message_id: str) -> None:
        self._seen[message_id] = None
        self._seen.move_to_end(message_id)
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    def _record(self, message_id: str, outcome: str) -> None:
        self._outcomes[message_id] = outcome
        while len(self._outcomes) > SEEN_LIMIT:
            self._outcomes.popitem(last=False)
        self._outcome_changed.set()

    async def _handle_message(self, message_id: str) -> None:
        if message_id in self._seen:
            log.debug("wechaty: message %s seen before, skipped", message_id)
            return
        self._remember(message_id)
        await self._logged_in.wait()  # whose messages are our own is known only after login
        try:
            incoming, why = await self._retrying(lambda: self._read(message_id))
        except Exception:
            self._seen.pop(message_id, None)  # a redelivery may succeed
            log.exception("wechaty: could not read message %s", message_id)
            self._record(message_id, "failed")
            return
        if incoming is None:
            self._record(message_id, f"ignored:{why}")
            return
        # Handed over without waiting for it to be handled (see the module's docstring).
        delivery = asyncio.ensure_future(self._deliver(message_id, incoming))
        self._delivering.add(delivery)
        delivery.add_done_callback(self._delivering.discard)
        if len(self._delivering) >= IN_FLIGHT:
            await asyncio.wait(self._delivering, return_when=asyncio.FIRST_COMPLETED)

    async def _deliver(self, message_id: str, incoming: IncomingMessage) -> None:
        assert self._on_message is not None
        try:
            await self._on_message(incoming)
        except Exception:
            log.exception("wechaty: handling message %s failed", message_id)
            self._record(message_id, "failed")
            return
        self._record(message_id, "dispatched")

    async def _retrying(self, read: Callable[[], Awaitable[tuple[IncomingMessage | None, str]]]
                        ) -> tuple[IncomingMessage | None, str]:
        """Read with up to three attempts, waiting for a reconnect in between."""
        for attempt in range(3):
            try:
                return await read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 2:
                    raise
                log.info("wechaty: reading failed (%s); retrying after reconnect", exc)
                await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        raise AssertionError("unreachable")

    async def _read(self, message_id: str) -> tuple[IncomingMessage | None, str]:
        """The message as an IncomingMessage, or (None, why it is ignored)."""
        sdk = wechaty_compat.load()
        bot = self._bot
        msg = bot.Message.load(message_id)
        try:
            await msg.ready()  # the payload, then the sender's and the room's
        except Exception as exc:
            if not msg.is_ready():
                raise
            # A room member who is not the account's friend may have no contact payload;
            # the room member payload below still names them.
            log.info("wechaty: message %s: %s (going on without it)", message_id, exc)
        payload = msg.payload
        sender_id = (payload.from_id or "").strip()
        if not sender_id:
            return None, "no-sender"
        if sender_id == self._self_id:
            return None, "self"
        room_id = (payload.room_id or "").strip() or None
        raw = payload.text or ""
        kind = int(payload.type)
        # App messages (接龙, quote-replies) come as XML, whatever type the service gives
        # them (the SDK maps GroupNote to UNSPECIFIED); other XML (images, links) is not text.
        text = await self._app_text(room_id, raw) if "<appmsg" in raw else None
        if text is None and kind == int(sdk.MessageType.MESSAGE_TYPE_TEXT) and _xml_root(raw) is None:
            text = raw
        if not text or not text.strip():
            return None, f"type-{kind}"
        at = self._when(payload.timestamp)
        talker = bot.Contact.load(sender_id)
        contact_name = (talker.payload.name or "") if talker.is_ready() else ""
        if room_id is None:
            return IncomingMessage(id=message_id, text=text, sender_id=sender_id,
                                   sender_name=contact_name or sender_id, at=at), ""
        room = bot.Room.load(room_id)
        await room.ready()
        topic = room.payload.topic or room_id
        owner = room.payload.owner_id or ""
        name = await self._display_name(room_id, sender_id) or contact_name or sender_id
        mentioned = await self._mentioned(room_id, text, list(payload.mention_ids or []))
        return IncomingMessage(id=message_id, text=text, sender_id=sender_id, sender_name=name,
                               at=at, room_id=room_id, room_name=topic,
                               sender_is_owner=bool(owner) and owner == sender_id,
                               mentioned=mentioned), ""

    def _when(self, timestamp: int | float | None) -> datetime:
        tz = self._settings.tz
        if not timestamp:
            return datetime.now(tz)
        seconds = timestamp / 1000 if timestamp > _MS_THRESHOLD else timestamp
        return datetime.fromtimestamp(seconds, tz)

    async def _app_text(self, room_id: str | None, raw: str) -> str | None:
        """Plain text for the app messages the bot reads (接龙, quote-replies), else None."""
        sol = read_solitaire(raw)
        if sol is not None:
            names: dict[str, str] = {}
            if room_id is not None:
                for author in {e.author_id for e in sol.entries if e.author_id}:
                    name = await self._display_name(room_id, author)
                    if name:
                        names[author] = name
            return solitaire_text(sol, names.get)
        return quote_text(raw)

    # -- room members ------------------------------------------------------------------------

    def _forget_room(self, room_id: str) -> None:
        self._members.pop(room_id, None)
        bot = self._bot
        if bot is not None:
            bot.Room._pool.pop(room_id, None)

    async def _member_names(self, room_id: str, contact_id: str) -> tuple[str, ...]:
        """(room alias, name) of a member, from the cache or the service."""
        members = self._members.setdefault(room_id, _Members())
        if contact_id in members.names:
            return members.names[contact_id]
        puppet = self._puppet()
        names: tuple[str, ...] = ()
        try:
            payload = await puppet.room_member_payload(room_id=room_id, contact_id=contact_id)
            names = tuple(n for n in (payload.room_alias, payload.name) if n)
        except Exception as exc:
            log.info("wechaty: no member payload for %s in %s (%s)", contact_id, room_id, exc)
        if not names:
            contact = self._bot.Contact.load(contact_id)
            with contextlib.suppress(Exception):
                await contact.ready()
            if contact.payload is not None and contact.payload.name:
                names = (contact.payload.name,)
        if names:
            members.names[contact_id] = names
        return names

    async def _display_name(self, room_id: str, contact_id: str) -> str | None:
        """How the member shows in the room: their room alias, else their name."""
        names = await self._member_names(room_id, contact_id)
        return names[0] if names else None

    async def _load_members(self, room_id: str) -> _Members:
        members = self._members.setdefault(room_id, _Members())
        ids = await self._puppet().room_members(room_id)
        limit = asyncio.Semaphore(16)

        async def one(contact_id: str) -> None:
            async with limit:
                await self._member_names(room_id, contact_id)

        await asyncio.gather(*(one(i) for i in ids if i not in members.names))
        members.complete = True
        return members

    async def _id_of(self, room_id: str, name: str) -> str | None:
        """The member whose room alias or name is ``name`` (the member list is re-read once
        on a miss: someone may have joined or renamed)."""
        members = self._members.setdefault(room_id, _Members())
        for attempt in range(2):
            for contact_id, names in members.names.items():
                if name in names:
                    return contact_id
            if attempt == 0:
                try:
                    members = await self._load_members(room_id)
                except Exception as exc:
                    log.info("wechaty: could not list the members of %s (%s)", room_id, exc)
                    return None
        return None

    async def _mentioned(self, room_id: str, text: str, mention_ids: list[str]
                         ) -> tuple[tuple[str, str], ...]:
        """(contact id, name as written) of each @mention, in the order of the text."""
        found: list[tuple[str, str]] = []
        by_id = {cid: await self._member_names(room_id, cid) for cid in mention_ids}
        for written in text_mentions(text):
            cid = next((c for c, names in by_id.items() if written in names), None)
            if cid is None:
                cid = await self._id_of(room_id, written)
            if cid is not None and all(cid != c for c, _ in found):
                found.append((cid, written))
        for cid, names in by_id.items():
            if names and all(cid != c for c, _ in found):
                found.append((cid, names[0]))
        return tuple(found)

    async def _write_mentions(self, room_id: str, text: str, names: tuple[str, ...]
                              ) -> tuple[str, list[str]]:
        """Resolve display names to member ids; "@NAME " becomes "@NAME\u2005" as WeChat writes."""
        ids: list[str] = []
        missing: list[str] = []
        for name in dict.fromkeys(names):
            cid = await self._id_of(room_id, name)
            if cid is None:
                log.info("wechaty: @%s is not a member of %s; sent without the mention", name, room_id)
                continue
            if cid not in ids:
                ids.append(cid)
            pattern = re.compile(rf"@{re.escape(name)}(?: |(?=\n)|$)")
            if pattern.search(text):
                text = pattern.sub(f"@{name}{AT_SEPARATOR}".replace("\\", "\\\\"), text)
            else:
                missing.append(name)
        if missing:
            text = "".join(f"@{n}{AT_SEPARATOR}" for n in missing) + text
        return text, ids

    # -- the bot joins a room ----------------------------------------------------------------

    async def _handle_join(self, payload: Any) -> None:
        room_id = payload.room_id
        self._forget_room(room_id)
        invited = list(payload.invited_ids or [])
        await self._logged_in.wait()
        if self._self_id not in invited:
            return
        key = f"room-join:{room_id}:{payload.timestamp}"
        if key in self._seen:
            return
        self._remember(key)
        room = self._bot.Room.load(room_id)
        await room.ready()
        topic = (room.payload.topic if room.payload else "") or ""
        if self._on_joined is not None:
            await self._on_joined(room_id, topic)
