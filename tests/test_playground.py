"""The playground: the browser chat simulator `tuangou run` serves without a WeChat puppet.

(a) Over its websocket, against a live runtime on a real database: messages are dispatched,
the bot answers live, history replays to a new page, garbage is refused.
(b) Acceptance: `tuangou run` in a subprocess, driven through Chromium with Playwright.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import Session, func, select

from bot.adapters.playground import PRIVATE, PlaygroundAdapter, deal_panel, member_id
from bot.cli import deal_panel_provider
from bot.config import Settings
from bot.export import export_deals
from bot.runtime import LiveRuntime
from models.tables import ProcessedMessage

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ROOM = "幸福里3期宝妈群"
DEAL = "开团 山东富士苹果 39.9元/箱 20箱成团 明晚8点截团"
QUOTE_LINE = "- - - - - - - - - - - - - - -"
# Frames each open test socket has received so far (keyed by the socket itself, dropped with it).
_FRAMES: weakref.WeakKeyDictionary[aiohttp.ClientWebSocketResponse, list[dict[str, Any]]] = (
    weakref.WeakKeyDictionary())


@dataclass
class Live:
    adapter: PlaygroundAdapter
    runtime: LiveRuntime
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        assert self.adapter.url is not None
        return self.adapter.url

    @property
    def ws_url(self) -> str:
        return f"{self.url}ws"

    def export(self) -> dict[str, Any]:
        with self.runtime.app.sessions() as session:
            return export_deals(session, self.runtime.settings, None)

    def processed(self) -> int:
        with Session(self.runtime.app.engine) as session:
            return int(session.exec(select(func.count()).select_from(ProcessedMessage)).one())


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """A live runtime on a SQLite file with the playground on a free port."""
    settings = replace(Settings(), database_url=f"sqlite:///{tmp_path / 'pg.db'}",
                       ack_window_seconds=0.3, playground_port=0, room_interval_seconds=0.0)
    adapter = PlaygroundAdapter(settings)
    runtime = LiveRuntime(settings, adapter, flush_interval=0.05)
    adapter.set_state_provider(deal_panel_provider(runtime))
    await runtime.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Live(adapter, runtime, session)
    finally:
        await runtime.stop()


def say(name: str, text: str, *, room: str = ROOM, leader: bool = False) -> dict[str, Any]:
    return {"type": "say", "room": room, "name": name, "leader": leader, "text": text}


async def until(ws: aiohttp.ClientWebSocketResponse, pred: Callable[[dict[str, Any]], bool],
                seconds: float = 15) -> dict[str, Any]:
    """The first frame this socket received (before or from now on) that matches ``pred``."""
    frames = _FRAMES.setdefault(ws, [])
    for frame in frames:
        if pred(frame):
            return frame
    async with asyncio.timeout(seconds):
        while True:
            frame = await ws.receive_json()
            frames.append(frame)
            if pred(frame):
                return frame


def bot_says(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == "message" and f["message"]["bot"] and text in f["message"]["text"]


# ---- (a) the websocket ------------------------------------------------------------------

async def test_a_message_is_dispatched_and_the_reply_arrives_live(live: Live) -> None:
    async with live.session.ws_connect(live.ws_url) as ws:
        hello = await ws.receive_json()
        assert hello["type"] == "hello"
        assert hello["rooms"] == ["幸福里3期宝妈群", "阳光花园邻里群", "锦绣苑团购群"]
        assert hello["private"] == PRIVATE
        assert hello["history"] == []
        assert hello["state"] == {"deals": []}

        await ws.send_json(say("王团长", DEAL, leader=True))
        echo = await until(ws, lambda f: f["type"] == "message" and not f["message"]["bot"])
        assert (echo["message"]["sender"], echo["message"]["leader"], echo["message"]["bot"],
                echo["message"]["text"]) == ("王团长", True, False, DEAL)
        card = await until(ws, bot_says("开团 #1"))
        assert card["message"]["room"] == ROOM
        assert "39.9元/箱" in card["message"]["text"]

        await ws.send_json(say("李阿姨", "我要2箱"))
        ack = await until(ws, bot_says("新增"))
        assert "李阿姨 2箱" in ack["message"]["text"]
        state = await until(ws, lambda f: f["type"] == "state" and f["state"]["deals"][0]["members"])
        panel = state["state"]["deals"][0]
        assert (panel["id"], panel["total"], panel["total_amount"]) == (1, "2箱", "79.80")
        assert panel["members"] == [{"name": "李阿姨", "placed_for": None, "note": "",
                                     "lines": "2箱", "amount": "79.80"}]

    deal = live.export()["deals"][0]
    assert (deal["room"], deal["leader"], deal["title"]) == (ROOM, "王团长", "山东富士苹果")
    assert [(o["member"], o["lines"]) for o in deal["orders"]] == [
        ("李阿姨", [{"item": "山东富士苹果", "qty": 2}])]


async def test_quote_replies_mentions_and_private_chat(live: Live) -> None:
    room, msg = live.adapter.parse_frame(json.dumps(say(
        "张姐", f"「李阿姨：我要2箱」\n{QUOTE_LINE}\n@李阿姨\u2005跟一单 @团购助手 ")))
    assert room == ROOM
    assert (msg.room_id, msg.room_name, msg.sender_id, msg.sender_is_owner) == (
        f"playground:room:{ROOM}", ROOM, member_id("张姐"), False)
    assert msg.mentioned == ((member_id("李阿姨"), "李阿姨"), ("playground:bot", "团购助手"))
    assert msg.id != live.adapter.parse_frame(json.dumps(say("张姐", "x")))[1].id

    async with live.session.ws_connect(live.ws_url) as ws:
        await until(ws, lambda f: f["type"] == "hello")
        await ws.send_json(say("王团长", DEAL, leader=True))
        await until(ws, bot_says("开团 #1"))
        await ws.send_json(say("李阿姨", "我要2箱"))
        await ws.send_json(say("张姐", f"「李阿姨：我要2箱」\n{QUOTE_LINE}\n跟一单"))
        echo = await until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "张姐")
        assert echo["message"]["quote"] == {"sender": "李阿姨", "text": "我要2箱"}
        assert echo["message"]["body"] == "跟一单"
        await until(ws, bot_says("张姐"))
        # a private message to the bot: no room, the answer comes back to the person
        await ws.send_json(say("张姐", "我的订单", room=PRIVATE))
        reply = await until(ws, lambda f: bot_says("")(f) and f["message"]["room"] == PRIVATE)
        assert reply["message"]["to"] == "张姐"
        assert "山东富士苹果" in reply["message"]["text"]
    orders = live.export()["deals"][0]["orders"]
    assert [(o["member"], o["lines"][0]["qty"]) for o in orders] == [("李阿姨", 2), ("张姐", 1)]


async def test_history_replays_to_a_newly_opened_page(live: Live) -> None:
    async with live.session.ws_connect(live.ws_url) as ws:
        await until(ws, lambda f: f["type"] == "hello")
        await ws.send_json(say("王团长", DEAL, leader=True))
        await until(ws, bot_says("开团 #1"))
        await ws.send_json(say("陈哥", "来三箱", room="阳光花园邻里群"))  # no deal in that room
        await ws.send_json(say("陈哥", "来三箱"))
        await until(ws, bot_says("陈哥"))
        await until(ws, lambda f: f["type"] == "state" and f["state"]["deals"][0]["total"] == "3箱")
    async with live.session.ws_connect(live.ws_url) as ws:
        hello = await ws.receive_json()
    history = hello["history"]
    assert [(m["room"], m["sender"], m["text"].split("\n")[0]) for m in history] == [
        (ROOM, "王团长", DEAL),
        (ROOM, "团购助手", "🛒 开团 #1 山东富士苹果"),
        ("阳光花园邻里群", "陈哥", "来三箱"),
        (ROOM, "陈哥", "来三箱"),
        (ROOM, "团购助手", "✅ #1 新增：陈哥 3箱"),
    ]
    assert len({m["id"] for m in history}) == len(history)
    assert hello["state"]["deals"][0]["members"][0]["name"] == "陈哥"
    async with live.session.get(f"{live.url}api/state") as resp:
        assert (await resp.json())["history"] == history


GARBAGE: list[str | bytes] = [
    "not json",
    "[1, 2]",
    "null",
    json.dumps({"type": "delete_everything"}),
    json.dumps({**say("李阿姨", "跟一单"), "room": "别的群"}),
    json.dumps({k: v for k, v in say("李阿姨", "跟一单").items() if k != "name"}),
    json.dumps(say("", "跟一单")),
    json.dumps(say("@所有人", "跟一单")),
    json.dumps(say("李\u0000阿姨", "跟一单")),
    json.dumps(say("名" * 40, "跟一单")),
    json.dumps({**say("李阿姨", "跟一单"), "leader": "yes"}),
    json.dumps(say("李阿姨", "   \n ")),
    json.dumps({**say("李阿姨", "x"), "text": ["跟一单"]}),
    json.dumps(say("李阿姨", "跟" * 5000)),
    b"\x00\x01binary",
]


async def test_garbage_frames_get_an_error_and_change_nothing(live: Live) -> None:
    async with live.session.ws_connect(live.ws_url) as ws, \
            live.session.ws_connect(live.ws_url) as watcher:
        await until(ws, lambda f: f["type"] == "hello")
        await until(watcher, lambda f: f["type"] == "hello")
        for frame in GARBAGE:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            answer = await asyncio.wait_for(ws.receive_json(), 5)
            assert answer["type"] == "error", (frame, answer)
            assert answer["error"], (frame, answer)
        # the socket still works, and the only thing the other page ever saw is this message
        await ws.send_json(say("李阿姨", "大家好"))
        seen = await asyncio.wait_for(watcher.receive_json(), 5)
        assert (seen["type"], seen["message"]["text"]) == ("message", "大家好")
    assert [m["text"] for m in live.adapter.hello()["history"]] == ["大家好"]
    await asyncio.sleep(0.2)  # let the dispatcher record the one valid message
    assert live.processed() == 1
    assert live.export() == {"deals": []}


async def test_a_cross_origin_page_cannot_open_the_websocket(live: Live) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await live.session.ws_connect(live.ws_url, headers={"Origin": "http://evil.example"})
    assert exc.value.status == 403
    async with live.session.ws_connect(live.ws_url, origin=live.url.rstrip("/")) as ws:
        assert (await ws.receive_json())["type"] == "hello"


async def test_the_page_and_its_static_files_are_served_locally(live: Live) -> None:
    async with live.session.get(live.url) as resp:
        page = await resp.text()
        assert resp.status == 200
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "/static/app.js" in page
    assert "/static/style.css" in page
    assert "//cdn" not in page
    for name in ("app.js", "style.css", "favicon.svg"):
        async with live.session.get(f"{live.url}static/{name}") as resp:
            assert resp.status == 200, name
            body = await resp.text()
            assert "https://" not in body
            assert "http://" not in body.replace("http://www.w3.org", "")
    app_js = (REPO / "bot/adapters/playground_static/app.js").read_text("utf-8")
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write", app_js)


def test_the_panel_counts_active_orders_only() -> None:
    data = {"deals": [{
        "id": 2, "room": ROOM, "title": "水果", "leader": "王团长", "status": "open",
        "deadline": "2026-11-25T20:00:00+08:00", "threshold": 10, "threshold_unit": "份",
        "items": [{"no": 1, "name": "苹果", "price": "39.90", "unit": "箱", "stock": None},
                  {"no": 2, "name": "橙子", "price": None, "unit": "份", "stock": None}],
        "orders": [
            {"member": "李阿姨", "status": "active", "note": "3号楼", "placed_for": None, "paid": False,
             "picked_up": False, "lines": [{"item": "苹果", "qty": 2}, {"item": "橙子", "qty": 1.5}]},
            {"member": "张姐", "status": "cancelled", "note": None, "placed_for": None, "paid": False,
             "picked_up": False, "lines": [{"item": "苹果", "qty": 0}]},
            {"member": "李阿姨", "status": "active", "note": None, "placed_for": "王奶奶",
             "paid": False, "picked_up": False, "lines": [{"item": "苹果", "qty": 1}]},
        ]}]}
    deal = deal_panel(data)["deals"][0]
    assert (deal["total"], deal["total_amount"], deal["people"], deal["threshold"], deal["deadline"]) == (
        "3箱 + 1.5份", "119.70", 1, "10份", "11月25日 20:00")
    assert [(m["name"], m["placed_for"], m["lines"], m["amount"]) for m in deal["members"]] == [
        ("李阿姨", None, "苹果 2箱、橙子 1.5份", "79.80"), ("李阿姨", "王奶奶", "苹果 1箱", "39.90")]
    assert [(i["name"], i["qty"], i["amount"]) for i in deal["items"]] == [
        ("苹果", "3", "119.70"), ("橙子", "1.5", None)]


# ---- (b) acceptance: `tuangou run` in a browser -------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def _start_run(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    config = tmp_path / "config.toml"
    config.write_text("[bot]\nack_window_seconds = 2\n\n[pacing]\nroom_interval_seconds = 0.2\n", "utf-8")
    env = {**os.environ, "TUANGOU_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "PYTHONUNBUFFERED": "1"}
    env.pop("TUANGOU_WECHATY_TOKEN", None)
    with (tmp_path / "run.stderr").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "--config", str(config), "run", "--port", "0",
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode("utf-8")
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    prefix, suffix = "tuangou: playground on ", " (Ctrl-C stops)\n"
    if not (line.startswith(prefix) and line.endswith(suffix)):
        proc.kill()
        await proc.wait()
        pytest.fail(f"unexpected first line {line!r}; stderr:\n{(tmp_path / 'run.stderr').read_text()}")
    url = line[len(prefix):-len(suffix)]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/")
    return proc, url


async def test_acceptance_group_buy_in_the_browser(tmp_path: Path) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    timeout = 30_000
    proc, url = await _start_run(tmp_path)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                               headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                await page.goto(url)
                await expect(page.locator("#conn")).to_have_text("已连接", timeout=timeout)
                room = page.locator(f'section.room[data-room="{ROOM}"]')
                await expect(page.locator("section.room")).to_have_count(4)  # 3 groups + private

                async def say(name: str, text: str, *, leader: bool = False) -> None:
                    await page.locator("#member").fill(name)
                    await page.locator("#leader").set_checked(leader)
                    box = room.locator("textarea")
                    await box.fill(text)
                    await box.press("Enter")
                    await expect(box).to_have_value("")

                await say("王团长", DEAL, leader=True)
                card = room.locator(".msg.bot .bubble").filter(has_text="开团 #1")
                await expect(card).to_be_visible(timeout=timeout)
                await expect(card).to_contain_text("39.9元/箱")
                await expect(room.locator('.msg[data-sender="王团长"] .leader-tag')).to_be_visible()

                started = time.monotonic()
                await say("李阿姨", "跟一单")
                await say("张姐", "我要2箱")
                zhang = room.locator('.msg[data-sender="张姐"] .bubble').filter(has_text="我要2箱")
                await zhang.click()
                await expect(room.locator(".quote-preview")).to_contain_text("张姐：我要2箱")
                await say("刘妈妈", "跟一单")
                typing = time.monotonic() - started
                quoted = room.locator('.msg[data-sender="刘妈妈"]').filter(has_text="跟一单")
                await expect(quoted.locator(".quote")).to_have_text("张姐：我要2箱", timeout=timeout)
                await expect(room.locator(".quote-preview")).to_be_hidden()

                panel = page.locator('#panel .deal[data-deal="1"]')
                await expect(panel.locator(".total-qty")).to_have_text("合计 4箱", timeout=timeout)
                await expect(panel.locator(".total-amount")).to_have_text("¥159.60")
                await expect(panel.locator(".orders .who")).to_have_text(["李阿姨", "张姐", "刘妈妈"])
                await expect(panel.locator(".orders td.num")).to_contain_text(["1箱", "2箱", "1箱"])

                acks = room.locator(".msg.bot .bubble").filter(has_text="新增")
                await expect(acks.filter(has_text="刘妈妈")).to_be_visible(timeout=timeout)
                assert typing < 2, f"the three orders took {typing:.1f}s, longer than the ack window"
                await expect(acks).to_have_count(1)  # one coalesced ack, not one per order
                await expect(acks).to_contain_text("李阿姨 1箱、张姐 2箱、刘妈妈 1箱")
                await expect(room.locator(".msg.bot")).to_have_count(2)  # the card and the ack

                shot = (REPO / "docs" / "playground.png" if os.environ.get("TUANGOU_SCREENSHOT") == "1"
                        else tmp_path / "playground.png")
                shot.parent.mkdir(parents=True, exist_ok=True)
                await page.locator("#member").fill("张姐")  # her own messages show as "mine"
                await page.locator("#member").blur()
                await page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
                assert not problems, problems
            finally:
                await browser.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.stdout is not None
        await proc.stdout.read()
    assert code == 0, (tmp_path / "run.stderr").read_text("utf-8")
