"""The playground: simulated WeChat group chats in a browser, for trying the bot out.

``tuangou run`` serves it when no WeChat puppet is configured. A local aiohttp server shows a
few group chats side by side (and a private chat with the bot); whoever opens the page picks
a member name, says things in any group, quote-replies earlier messages and @mentions people,
and sees the bot answer live over a websocket, next to a panel of the open deals' orders and
totals.

The adapter knows nothing of the database: the panel's data comes from a state provider the
caller sets (``tuangou run`` wires ``export_deals``), returning ``export_deals``'s JSON shape.

Websocket protocol (JSON text frames):

* server → page: ``hello`` (rooms, preset members, the history since the server started and
  the panel), then ``message`` for every message said in any room, ``state`` when the panel
  changes, and ``error`` for a frame it refused.
* page → server: ``{"type": "say", "room": ROOM, "name": NAME, "leader": BOOL, "text": TEXT}``;
  ROOM is a group's name or :data:`PRIVATE` for a private message to the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from bot.adapters.base import JoinCallback, MessageCallback
from bot.config import Settings
from bot.types import IncomingMessage, OutgoingMessage
from handlers.parsing.wechat import mentions, split_quote

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "playground_static"
ROOMS = ("幸福里3期宝妈群", "阳光花园邻里群", "锦绣苑团购群")
PRIVATE = "私聊机器人"  # the pseudo-room of private messages to (and from) the bot
# Neighbours the page offers; any other name can be typed. (name, leader by default)
MEMBERS = (("王团长", True), ("李阿姨", False), ("张姐", False), ("刘妈妈", False),
           ("赵奶奶", False), ("陈哥", False), ("小林", False))
MAX_TEXT = 4000  # characters of one message from the page
MAX_NAME = 32
MAX_HISTORY = 1000  # messages kept per room
MAX_FRAME = 64 * 1024
PANEL_STATUS = {"open": "接龙中", "succeeded": "已成团", "failed": "未成团", "cancelled": "已取消"}

StateProvider = Callable[[], Any]  # returns (or resolves to) export_deals's {"deals": [...]}


def member_id(name: str) -> str:
    """The playground's stable platform id for a member name."""
    return f"playground:member:{name}"


def room_id(name: str) -> str:
    """The playground's platform id for a room name."""
    return f"playground:room:{name}"


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"


def deal_panel(data: Mapping[str, Any]) -> dict[str, Any]:
    """The totals panel from ``export_deals`` data: per deal its items, members and totals.

    Only active orders count; a member's several orders for the same person are summed.
    """
    deals = []
    for deal in data.get("deals", []):
        items = {it["name"]: it for it in deal.get("items", [])}
        per_item: dict[str, Decimal] = {name: Decimal(0) for name in items}
        members: dict[tuple[str, str | None], dict[str, Any]] = {}
        for order in deal.get("orders", []):
            if order.get("status") != "active":
                continue
            key = (order["member"], order.get("placed_for"))
            row = members.setdefault(key, {"qty": {}, "amount": Decimal(0), "priced": False,
                                           "note": order.get("note") or ""})
            for line in order.get("lines", []):
                qty = _decimal(line.get("qty"))
                if not qty:
                    continue
                name = line["item"]
                per_item[name] = per_item.get(name, Decimal(0)) + qty
                row["qty"][name] = row["qty"].get(name, Decimal(0)) + qty
                price = _decimal(items.get(name, {}).get("price"))
                if price is not None:
                    row["amount"] += price * qty
                    row["priced"] = True
        single = len(items) == 1
        unit_totals: dict[str, Decimal] = {}
        grand = Decimal(0)
        item_rows = []
        for name, qty in per_item.items():
            item = items.get(name, {})
            unit = item.get("unit") or ""
            price = _decimal(item.get("price"))
            amount = price * qty if price is not None else None
            if amount is not None:
                grand += amount
            if qty:
                unit_totals[unit] = unit_totals.get(unit, Decimal(0)) + qty
            item_rows.append({"no": item.get("no"), "name": name, "unit": unit,
                              "price": _money(price) if price is not None else None,
                              "qty": _qty(qty), "amount": _money(amount) if amount is not None else None})
        member_rows = []
        for (member, placed_for), row in members.items():
            if not row["qty"]:
                continue
            parts = [f"{'' if single else name + ' '}{_qty(q)}{items.get(name, {}).get('unit') or ''}"
                     for name, q in row["qty"].items()]
            member_rows.append({"name": member, "placed_for": placed_for, "note": row["note"],
                                "lines": "、".join(parts),
                                "amount": _money(row["amount"]) if row["priced"] else None})
        deadline = None
        if deal.get("deadline"):
            with contextlib.suppress(ValueError):
                deadline = datetime.fromisoformat(deal["deadline"]).strftime("%m月%d日 %H:%M")
        threshold = None
        if deal.get("threshold") is not None:
            threshold = f"{_qty(Decimal(str(deal['threshold'])))}{deal.get('threshold_unit') or ''}"
        first_unit = next((it.get("unit") or "" for it in items.values()), "")
        total = " + ".join(f"{_qty(q)}{unit}" for unit, q in unit_totals.items()) or f"0{first_unit}"
        deals.append({
            "id": deal.get("id"), "room": deal.get("room"), "title": deal.get("title"),
            "leader": deal.get("leader"), "status": deal.get("status"),
            "status_text": PANEL_STATUS.get(deal.get("status") or "", deal.get("status")),
            "deadline": deadline, "threshold": threshold, "items": item_rows,
            "members": member_rows, "total": total, "total_amount": _money(grand),
            "people": len({m["name"] for m in member_rows}),
        })
    return {"deals": deals}


class BadFrame(ValueError):
    """A websocket frame the playground refuses; the message is shown to the page."""


class PlaygroundAdapter:
    """A ChatAdapter whose chats live in a browser page served on the local machine."""

    def __init__(self, settings: Settings, *, rooms: tuple[str, ...] = ROOMS) -> None:
        self._settings = settings
        self.rooms: tuple[str, ...] = rooms
        self.history: dict[str, list[dict[str, Any]]] = {name: [] for name in (*rooms, PRIVATE)}
        self.port: int | None = None
        self.url: str | None = None
        self._state: dict[str, Any] = {"deals": []}
        self._provider: StateProvider | None = None
        self._on_message: MessageCallback | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._seq = 0

    # -- wiring ---------------------------------------------------------------------------

    def set_state_provider(self, provider: StateProvider | None) -> None:
        """Where the panel's data comes from: a callable returning export_deals's shape
        (or an awaitable of it). Called after every dispatched message and bot message."""
        self._provider = provider

    def web_app(self) -> web.Application:
        """The aiohttp application: the page, its static files, the websocket, the state."""
        app = web.Application(client_max_size=MAX_FRAME)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        app.on_response_prepare.append(self._headers)
        return app

    # -- ChatAdapter ----------------------------------------------------------------------

    async def start(self, on_message: MessageCallback, *,
                    on_joined: JoinCallback | None = None) -> None:
        """Serve the page on the configured host and port (port 0: any free one). The bot is
        in every simulated room from the start, so ``on_joined`` is never called."""
        self._on_message = on_message
        await self._refresh_state()
        runner = web.AppRunner(self.web_app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.playground_host, self._settings.playground_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        host = self._settings.playground_host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{self.port}/"
        self._tasks = [asyncio.create_task(self._dispatch_loop(), name="playground-dispatch"),
                       asyncio.create_task(self._refresh_loop(), name="playground-panel")]

    async def stop(self) -> None:
        """Close every page's websocket and stop serving."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopped")
        self._sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._on_message = None

    async def send(self, message: OutgoingMessage) -> None:
        """Show a bot message in its room (or the private chat) on every open page."""
        if message.room_id:
            room = message.room_name or message.room_id.removeprefix("playground:room:")
        else:
            room = PRIVATE
        entry = self._entry(room, self._settings.bot_name, message.text, bot=True,
                            to=None if message.room_id else message.to_name,
                            mentions=list(message.mentions))
        await self._post(room, entry)
        self._dirty.set()

    # -- inbound --------------------------------------------------------------------------

    def parse_frame(self, raw: str) -> tuple[str, IncomingMessage]:
        """Check a page's frame and build the inbound message; BadFrame says what is wrong."""
        if len(raw) > MAX_FRAME:
            raise BadFrame("消息太长")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BadFrame("不是 JSON") from exc
        if not isinstance(data, dict):
            raise BadFrame("应为 JSON 对象")
        if data.get("type") != "say":
            raise BadFrame(f"未知的消息类型：{str(data.get('type'))[:40]}")
        room = data.get("room")
        if not isinstance(room, str) or room not in self.history:
            raise BadFrame("没有这个群")
        name = data.get("name")
        if not isinstance(name, str):
            raise BadFrame("请先填写群成员名字")
        name = unicodedata.normalize("NFC", name).strip()
        if not name or len(name) > MAX_NAME or "@" in name or any(
                unicodedata.category(ch).startswith("C") for ch in name):
            raise BadFrame(f"名字须为 1–{MAX_NAME} 个字，不含 @ 和控制字符")
        leader = data.get("leader", False)
        if not isinstance(leader, bool):
            raise BadFrame("leader 应为 true 或 false")
        text = data.get("text")
        if not isinstance(text, str):
            raise BadFrame("消息内容应为文字")
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
        if not text:
            raise BadFrame("消息是空的")
        if len(text) > MAX_TEXT:
            raise BadFrame(f"消息太长（最多 {MAX_TEXT} 字）")
        if "\x00" in text:
            raise BadFrame("消息含有控制字符")
        _, reply = split_quote(text)
        said = list(dict.fromkeys(mentions(reply)))
        private = room == PRIVATE
        msg = IncomingMessage(
            id=f"playground:{uuid.uuid4()}", text=text, sender_id=member_id(name), sender_name=name,
            at=datetime.now(self._settings.tz), room_id=None if private else room_id(room),
            room_name=None if private else room, sender_is_owner=leader and not private,
            mentioned=tuple((self._mention_id(n), n) for n in said))
        return room, msg

    def _mention_id(self, name: str) -> str:
        return "playground:bot" if name == self._settings.bot_name else member_id(name)

    async def receive(self, raw: str) -> IncomingMessage:
        """Take a page's frame: show the message to every page and queue it for the bot."""
        room, msg = self.parse_frame(raw)
        entry = self._entry(room, msg.sender_name, msg.text, bot=False, leader=msg.sender_is_owner,
                            mentions=[n for _, n in msg.mentioned], msg_id=msg.id, at=msg.at)
        await self._post(room, entry)
        self._queue.put_nowait(msg)
        return msg

    async def _dispatch_loop(self) -> None:
        # One message at a time, in the order the pages sent them, like one chat stream.
        while True:
            msg = await self._queue.get()
            try:
                if self._on_message is not None:
                    await self._on_message(msg)
            except Exception:
                log.exception("the bot failed on playground message %s", msg.id)
            finally:
                self._dirty.set()

    # -- history and pages ----------------------------------------------------------------

    def _entry(self, room: str, sender: str, text: str, *, bot: bool, leader: bool = False,
               to: str | None = None, mentions: list[str] | None = None, msg_id: str | None = None,
               at: datetime | None = None) -> dict[str, Any]:
        at = (at or datetime.now(self._settings.tz)).astimezone(self._settings.tz)
        quote, body = split_quote(text)
        self._seq += 1
        return {
            "id": msg_id or f"playground:{uuid.uuid4()}", "seq": self._seq, "room": room,
            "sender": sender, "sender_id": "playground:bot" if bot else member_id(sender),
            "bot": bot, "leader": leader, "to": to, "text": text, "body": body if quote else text,
            "quote": {"sender": quote.sender, "text": quote.text} if quote else None,
            "mentions": mentions or [], "at": at.isoformat(), "time": at.strftime("%H:%M"),
        }

    async def _post(self, room: str, entry: dict[str, Any]) -> None:
        log_ = self.history.setdefault(room, [])
        log_.append(entry)
        del log_[:-MAX_HISTORY]
        await self._broadcast({"type": "message", "message": entry})

    def hello(self) -> dict[str, Any]:
        """What a newly opened page receives: rooms, members, history and the panel."""
        history = sorted((m for msgs in self.history.values() for m in msgs), key=lambda m: m["seq"])
        return {"type": "hello", "bot_name": self._settings.bot_name,
                "rooms": [r for r in self.history if r != PRIVATE], "private": PRIVATE,
                "members": [{"name": n, "leader": lead} for n, lead in MEMBERS],
                "history": history, "state": self._state}

    async def _broadcast(self, frame: dict[str, Any]) -> None:
        text = _dumps(frame)
        for ws in list(self._sockets):
            if ws.closed:
                self._sockets.discard(ws)
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self._sockets.discard(ws)

    # -- panel ----------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._refresh_state()

    async def _refresh_state(self) -> None:
        if self._provider is None:
            return
        try:
            data = self._provider()
            if inspect.isawaitable(data):
                data = await data
            state = deal_panel(data)
        except Exception:  # the panel must never stop the chat
            log.exception("reading the deals for the playground panel failed")
            return
        if state != self._state:
            self._state = state
            await self._broadcast({"type": "state", "state": state})

    @property
    def state(self) -> dict[str, Any]:
        """The panel as the pages last received it."""
        return self._state

    # -- HTTP handlers --------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Content-Type": "text/html; charset=utf-8"})

    async def _api_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.hello(), dumps=_dumps)

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        # A web page elsewhere must not drive the bot through the visitor's browser.
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser (tests, tools)
        return urlsplit(origin).netloc.lower() == (request.host or "").lower()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            raise web.HTTPForbidden(text="cross-origin websocket refused")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(_dumps(self.hello()))
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    try:
                        await self.receive(frame.data)
                    except BadFrame as exc:
                        await ws.send_str(_dumps({"type": "error", "error": str(exc)}))
                elif frame.type == WSMsgType.BINARY:
                    await ws.send_str(_dumps({"type": "error", "error": "只接受文字消息"}))
                elif frame.type == WSMsgType.ERROR:
                    break
        except ConnectionError:
            pass  # the page went away mid-frame
        finally:
            self._sockets.discard(ws)
        return ws
