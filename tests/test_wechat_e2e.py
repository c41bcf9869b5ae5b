"""Real WeChat transport end to end: python-wechaty's SDK talks gRPC to a fake puppet service.

Nothing of the SDK is mocked: ``tests/puppet`` is a grpclib server implementing the
``wechaty.Puppet`` methods the SDK calls, and ``WechatyAdapter`` runs on top of the SDK.
(Not named ``test_wechat.py``: tests/parsing/test_wechat.py has that basename, and test
modules outside packages must have unique basenames or the whole suite fails to collect.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from puppet import fake_puppet
from puppet.driver import ADAPTER_OPTIONS
from puppet.replay import plain_replay, replay_through_puppet, setup_transcript
from sqlmodel import Session

from bot.adapters.replay import Said, parse_transcript
from bot.adapters.wechat import WechatyAdapter
from bot.app import build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.export import export_deals
from bot.runtime import LiveRuntime
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "transcripts"
CASES = sorted(TRANSCRIPTS.glob("*.txt")) if TRANSCRIPTS.is_dir() else []
QUOTE_RULE = "- - - - - - - - - - - - - - -"


def _orders(export: dict[str, Any], deal: int = 0) -> dict[str, dict[str, float]]:
    """member -> item -> qty of a deal's active orders."""
    out: dict[str, dict[str, float]] = {}
    for order in export["deals"][deal]["orders"]:
        if order["status"] == "active":
            for line in order["lines"]:
                out.setdefault(order["member"], {})[line["item"]] = line["qty"]
    return out


# --- 1. acceptance: every shared transcript, through WeChat, ends as `tuangou replay` does -----

@pytest.mark.parametrize("path", CASES or [None], ids=[p.stem for p in CASES] or ["absent"])
async def test_transcript_through_wechat_matches_replay(path: Path | None, tmp_path: Path) -> None:
    if path is None:
        pytest.skip(f"no shared transcripts at {TRANSCRIPTS}")
    raw = await asyncio.to_thread(path.read_text, "utf-8")
    settings = Settings()
    plain = await plain_replay(raw, settings, f"sqlite:///{tmp_path / 'plain.db'}")
    async with fake_puppet() as wx:
        wechat = await replay_through_puppet(raw, settings, f"sqlite:///{tmp_path / 'wechat.db'}", wx)
        bot_id = wx.bot_id
        rooms = wx.service.rooms
    assert wechat.export == plain.export
    # Same words to the same chats, in the same order (the adapter writes "@NAME\u2005").
    assert wechat.messages == plain.messages
    assert plain.messages, "a transcript without a bot reply proves little"
    # Every transcript message reached the bot once, from the sender WeChat named.
    said = [e for e in parse_transcript(raw) if isinstance(e, Said)]
    assert len(wechat.received) == len(said)
    assert [m.sender_name for m in wechat.received] == [e.name for e in said]
    assert all(m.sender_id != bot_id for m in wechat.received)
    owners = {r.topic: r.owner_id for r in rooms.values()}
    for m in wechat.received:
        assert m.sender_is_owner == (m.room_name is not None and owners[m.room_name] == m.sender_id)
    if "#接龙" in raw:
        assert wechat.xml_jielong >= 1, "the 接龙 messages went as type-53 app messages"
        assert all(m.text.startswith("#接龙\n") for m in wechat.received if "接龙" in m.text)


# --- 2. the live runtime on a real clock -------------------------------------------------------

async def test_live_runtime_smoke(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    async with fake_puppet() as wx:
        wx.login("团购助手")
        room = wx.add_room("幸福里3期宝妈群", ["张三", "李四", "赵六"], owner="王团长")
        settings = wx.settings(database_url=db_url, ack_window_seconds=0.3, room_interval_seconds=0.05)
        runtime = LiveRuntime(settings, WechatyAdapter(settings, **ADAPTER_OPTIONS))
        await runtime.start()
        try:
            wx.bot_joins(room, inviter="王团长")
            greeting = (await wx.wait_sent(1))[0]
            assert greeting.room_id == room.id
            assert "团购助手" in greeting.text
            assert "跟一单" in greeting.text

            wx.say(room, "王团长", "开团 山东富士苹果 39.9元/箱 20箱成团 明晚8点截团")
            card = await wx.wait_for_sent("开团 #1")
            assert card.room_id == room.id
            assert "39.9元/箱" in card.text

            wx.say(room, "张三", "跟一单")
            wx.say(room, "李四", f"「张三：跟一单」\n{QUOTE_RULE}\n我也要两箱")
            ack = await wx.wait_for_sent("新增")
            assert ack.room_id == room.id
            assert "张三" in ack.text
            assert "李四" in ack.text
            assert "3/20" in ack.text

            # 赵六 has not spoken yet: only the mention's resolved contact id ties the new
            # leader to the 赵六 who then opens a deal.
            wx.say(room, "王团长", "设置团长 @赵六\u2005", mention=["赵六"])
            wx.say(room, "赵六", "开团 土鸡蛋 30元/板 明晚8点截团")
            await wx.wait_for_sent("开团 #2")
        finally:
            await runtime.stop()
    engine = sa.create_engine(db_url)
    try:
        with Session(engine) as session:
            export = export_deals(session, settings, None)
    finally:
        engine.dispose()
    assert [d["leader"] for d in export["deals"]] == ["王团长", "赵六"]
    assert _orders(export) == {"张三": {"山东富士苹果": 1}, "李四": {"山东富士苹果": 2}}
    assert not any("不是团长" in s.text or "只有团长" in s.text for s in wx.sent)


# --- 3. the event stream drops mid-burst; the service redelivers -------------------------------

BURST = 60


def _burst_transcript() -> str:
    lines = ["@room 阳光花园团购群", "@now 2026-11-24 09:00", "@leader 孙团长",
             "孙团长: 开团 赣南脐橙 29.9元/箱 50箱成团 明晚8点截团"]
    lines += [f"邻居{i:02d}: {['跟一单', '要两箱', '+3'][i % 3]}" for i in range(BURST)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("drop", ["none", "close", "error"])
async def test_stream_drop_mid_burst(drop: str, tmp_path: Path) -> None:
    raw = _burst_transcript()
    settings = Settings()
    plain = await plain_replay(raw, settings, f"sqlite:///{tmp_path / 'plain.db'}")
    events = parse_transcript(raw)
    said = [e for e in events if isinstance(e, Said)]
    digest = hashlib.sha1(raw.encode()).hexdigest()[:10]
    start = datetime(2026, 11, 24, 9, 0, tzinfo=settings.tz)
    async with fake_puppet() as wx:
        wsettings = setup_transcript(wx, events, settings)
        room = wx.room("阳光花园团购群")
        clock = ManualClock(start)
        apps: list[Any] = []
        dispatched: list[str] = []

        async def dispatch(msg: IncomingMessage) -> None:
            if await apps[0].dispatcher.dispatch(msg):
                dispatched.append(msg.id)

        async with wx.adapter(wsettings, dispatch) as bot:
            app = build_app(wsettings, clock, bot.adapter.send, VirtualScheduler(),
                            f"sqlite:///{tmp_path / 'wechat.db'}")
            apps.append(app)
            if drop != "none":
                wx.service.drop_after(BURST // 2, redeliver=10, error=drop == "error")
            ids = [wx.say(room, e.name, e.text, msg_id=f"replay:{digest}:{e.line_no}",
                          at=start + timedelta(seconds=i)) for i, e in enumerate(said)]
            async with asyncio.timeout(30):
                for msg_id in ids:
                    assert await bot.adapter.wait_outcome(msg_id) == "dispatched"
            await app.outbox.flush_all()
            with app.sessions() as session:
                export = export_deals(session, wsettings, None)
            app.engine.dispose()
            streams = wx.service.streams_opened
            delivered = [e.payload for e in wx.service.delivered if int(e.type) == 2]
        calls = bot.calls
    assert export == plain.export
    assert len(_orders(export)) == BURST
    assert dispatched == ids  # each message once, in the order it was said
    assert set(calls) == set(ids)
    assert set(calls.values()) == {1}
    if drop == "none":
        assert streams == 1
        assert len(delivered) == len(ids)
    else:
        assert streams == 2, "the adapter reconnected once"
        assert len(delivered) == len(ids) + 10, "the last 10 before the drop came again"


# --- 4. own messages, native 接龙 with authors, quote app messages, room aliases ----------------

async def test_own_messages_are_ignored(tmp_path: Path) -> None:
    async with fake_puppet(echo_sent=True) as wx:
        me = wx.login("团购助手")
        room = wx.add_room("枫林湾业主群", ["小雨"], owner="林团长")
        wx.add_member(room, me)
        settings = wx.settings(ack_window_seconds=0.1)
        apps: list[Any] = []

        async def dispatch(msg: IncomingMessage) -> None:
            await apps[0].dispatcher.dispatch(msg)

        async with wx.adapter(settings, dispatch) as bot:
            clock = ManualClock(datetime.now(settings.tz))
            app = build_app(settings, clock, bot.adapter.send, VirtualScheduler(),
                            f"sqlite:///{tmp_path / 'own.db'}")
            apps.append(app)
            first = wx.say(room, "林团长", "开团 云南蓝莓 35元/盒 明晚8点截团")
            assert await bot.outcome(first) == "dispatched"
            await wx.wait_sent(1)  # the deal card, echoed back as a message event
            # The bot's own words, as WeChat shows them to every client: a deal card and
            # an order-like text. Neither may count.
            own = wx.say(room, me, "开团 山东富士苹果 39.9元/箱 明晚8点截团")
            own2 = wx.say(room, me, "跟一单")
            later = wx.say(room, "小雨", "要两盒")
            assert await bot.outcome(own) == "ignored:self"
            assert await bot.outcome(own2) == "ignored:self"
            assert await bot.outcome(later) == "dispatched"
            with app.sessions() as session:
                export = export_deals(session, settings, None)
            app.engine.dispose()
            echoed = [s.id for s in wx.sent]
            received = list(bot.received)
    assert [d["title"] for d in export["deals"]] == ["云南蓝莓"]
    assert _orders(export) == {"小雨": {"云南蓝莓": 2}}
    assert [m.id for m in received] == [first, later]
    assert echoed
    assert not set(echoed) & {m.id for m in received}


async def test_native_jielong_with_authors(tmp_path: Path) -> None:
    async with fake_puppet() as wx:
        wx.login("团购助手")
        room = wx.add_room("枫林湾业主群", ["小雨", "阿杰", "梅姐"], owner="林团长",
                           aliases={"梅姐": "3栋梅姐"})
        settings = wx.settings()
        apps: list[Any] = []

        async def dispatch(msg: IncomingMessage) -> None:
            await apps[0].dispatcher.dispatch(msg)

        async with wx.adapter(settings, dispatch) as bot:
            app = build_app(settings, ManualClock(datetime.now(settings.tz)), bot.adapter.send,
                            VirtualScheduler(), f"sqlite:///{tmp_path / 'jl.db'}")
            apps.append(app)
            head = "#接龙\n云南蓝莓 35元/盒\n\n"
            ids = [
                wx.say(room, "林团长", "开团 云南蓝莓 35元/盒 明晚8点截团"),
                # Members wrote no names in their lines: the XML's authors say whose they are.
                wx.say_jielong(room, "小雨", head + "1. 2盒", authors=["小雨"]),
                wx.say_jielong(room, "阿杰", head + "1. 2盒\n2. 7栋 1盒", authors=["小雨", "阿杰"]),
                wx.say_jielong(room, "梅姐", head + "1. 2盒\n2. 7栋 1盒\n3. 😀 两盒",
                               authors=["小雨", "阿杰", "梅姐"]),
                # 阿杰 changes his own line; 小雨's line is repeated unchanged.
                wx.say_jielong(room, "阿杰", head + "1. 2盒\n2. 7栋 3盒\n3. 😀 两盒",
                               authors=["小雨", "阿杰", "梅姐"]),
            ]
            for msg_id in ids:
                assert await bot.outcome(msg_id) == "dispatched"
            texts = [m.text for m in bot.received]
            senders = [m.sender_name for m in bot.received]
            with app.sessions() as session:
                export = export_deals(session, settings, None)
            app.engine.dispose()
    assert texts[1] == "#接龙\n云南蓝莓 35元/盒\n\n1. 小雨 2盒"
    assert texts[3] == "#接龙\n云南蓝莓 35元/盒\n\n1. 小雨 2盒\n2. 阿杰 7栋 1盒\n3. 3栋梅姐 😀 两盒"
    assert senders[3] == "3栋梅姐"  # the room alias (群昵称) is how a member shows in the room
    assert _orders(export) == {"小雨": {"云南蓝莓": 2}, "阿杰": {"云南蓝莓": 3}, "3栋梅姐": {"云南蓝莓": 2}}
    notes = {o["member"]: o["note"] for o in export["deals"][0]["orders"]}
    assert notes["阿杰"] == "7栋"


async def test_quote_app_message_and_alias_mentions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with fake_puppet() as wx:
        wx.login("团购助手")
        room = wx.add_room("星河湾宝妈群", ["小芳", "阿婷"], owner="吴团长", aliases={"阿婷": "婷婷"})
        wx.service.strangers.add(wx.contact("小芳").id)  # not the account's friend: no ContactPayload
        async with wx.adapter() as bot:
            quote = wx.say_quote(room, "阿婷", "跟一单", quoted="小芳", quoted_text="咖啡来一盒")
            mention = wx.say(room, "吴团长", "已付 @婷婷\u2005@小芳 @路人甲", mention=["阿婷"])
            sticker = wx.say_xml(room, "小芳", "<msg><emoji md5=\"x\" /></msg>", wire_type=5)
            stranger = wx.say(room, "小芳", "<3 要两盒")
            assert await bot.outcome(quote) == "dispatched"
            assert await bot.outcome(mention) == "dispatched"
            assert await bot.outcome(sticker) == "ignored:type-4"
            assert await bot.outcome(stranger) == "dispatched"
            got = {m.id: m for m in bot.received}
            ting, fang = wx.contact("阿婷").id, wx.contact("小芳").id
    assert got[quote].text == f"「小芳：咖啡来一盒」\n{QUOTE_RULE}\n跟一单"
    assert got[quote].sender_name == "婷婷"
    assert got[mention].mentioned == ((ting, "婷婷"), (fang, "小芳"))  # 路人甲 is not a member
    assert got[mention].sender_is_owner
    assert (got[stranger].sender_id, got[stranger].sender_name) == (fang, "小芳")
    assert got[stranger].text == "<3 要两盒"  # text that merely starts with "<" stays text
    # The SDK's log lines (now in the application's logging) do not give the service
    # token away, and the SDK wrote no ./.wechaty cache directory.
    assert "fake-token" not in caplog.text
    assert not (Path.cwd() / ".wechaty").exists()


async def test_watchdog_reconnects_a_silent_service() -> None:
    async with fake_puppet() as wx:
        wx.login("团购助手")
        room = wx.add_room("碧桂园邻里群", ["阿琴"])
        wx.service.ding_hangs = True  # the stream stays open but nothing answers
        async with wx.adapter(heartbeat_seconds=0.3) as bot:
            await wx.wait_streams(2)
            wx.service.ding_hangs = False
            msg_id = wx.say(room, "阿琴", "要两板")
            assert await bot.outcome(msg_id) == "dispatched"
            assert bot.calls[msg_id] == 1


async def test_send_writes_mentions_once_and_privately(tmp_path: Path) -> None:
    from bot.types import OutgoingMessage

    async with fake_puppet() as wx:
        wx.login("团购助手")
        room = wx.add_room("碧桂园邻里群", ["小胡", "阿琴"], aliases={"阿琴": "琴姐"})
        async with wx.adapter() as bot:
            await bot.adapter.send(OutgoingMessage("🚚 #1 土鸡蛋 到货啦！\n@小胡 @琴姐", room_id=room.id,
                                                   room_name=room.topic, mentions=("小胡", "琴姐")))
            await bot.adapter.send(OutgoingMessage("⚠️ 库存仅剩3箱", room_id=room.id,
                                                   room_name=room.topic, mentions=("小胡",)))
            await bot.adapter.send(OutgoingMessage("你的订单：…", to_id=wx.contact("小胡").id,
                                                   to_name="小胡"))
    arrival, refusal, private = wx.sent
    hu, qin = wx.contact("小胡").id, wx.contact("阿琴").id
    assert arrival.text == "🚚 #1 土鸡蛋 到货啦！\n@小胡\u2005@琴姐\u2005"
    assert arrival.mention_ids == (hu, qin)
    assert arrival.room_id == room.id
    assert refusal.text == "@小胡\u2005⚠️ 库存仅剩3箱"  # a mention missing from the text goes first
    assert private.to_id == hu
    assert private.room_id is None
    assert private.mention_ids == ()
