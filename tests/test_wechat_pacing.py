"""Pacing and modes, measured through the real wechaty SDK and the fake puppet service, with the
default limits (acks coalesced over 10 s, one message per room every 3 s, 20 per minute).

Issue 3, acceptance 3 and 4.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from puppet import fake_puppet
from puppet.driver import ADAPTER_OPTIONS, PuppetDriver
from puppet.service import Sent

from bot.adapters.wechat import WechatyAdapter
from bot.config import Settings
from bot.runtime import LiveRuntime

ROOM = "幸福里3期宝妈群"
MEMBERS = [f"邻居{i:03d}" for i in range(200)]
DEFAULTS = Settings()


def _order_text(i: int) -> str:
    return ("跟一单", "我要2箱", "+1", "来三箱")[i % 4]


def _expected() -> dict[str, int]:
    return {name: (1, 2, 1, 3)[i % 4] for i, name in enumerate(MEMBERS)}


def _stored(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                'select m.name, sum(l.qty) from orderline l join "order" o on o.id = l.order_id'
                " join member m on m.id = o.member_id group by m.name")).all()
    finally:
        engine.dispose()
    return {name: int(qty) // 1000 for name, qty in rows}  # stored in thousandths


async def _wait(predicate, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _burst(wx: PuppetDriver, settings: Settings, spread: float) -> dict[str, float]:
    """Open a deal, then 200 members order over ``spread`` seconds; returns when each said it."""
    room = wx.room(ROOM)
    wx.say(room, "王团长", "开团 山东富士苹果 39.9元/箱 100箱成团 明晚8点截团")
    said: dict[str, float] = {}
    for i, name in enumerate(MEMBERS):
        wx.say(room, name, _order_text(i))
        said[name] = time.monotonic()
        await asyncio.sleep(spread / len(MEMBERS))
    return said


def _setup(wx: PuppetDriver) -> None:
    wx.login("团购助手")
    wx.add_room(ROOM, MEMBERS, owner="王团长")


async def test_a_burst_of_200_orders_is_acknowledged_in_few_paced_messages(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with fake_puppet() as wx:
        _setup(wx)
        settings = wx.settings(database_url=db_url)
        assert (settings.ack_window_seconds, settings.room_interval_seconds,
                settings.account_per_minute) == (10.0, 3.0, 20)  # the defaults, measured
        runtime = LiveRuntime(settings, WechatyAdapter(settings, **ADAPTER_OPTIONS))
        await runtime.start()
        try:
            said = await _burst(wx, settings, spread=12.0)
            await _wait(lambda: all(any(n in s.text for s in wx.sent) for n in MEMBERS), 40,
                        "every order to be acknowledged")
        finally:
            await runtime.stop()
        sent = list(wx.sent)
    assert _stored(db_url) == _expected()
    acks = [s for s in sent if "开团 #1" not in s.text]
    # At most 10 bot messages per 100 orders.
    assert len(acks) <= 20, [s.text[:60] for s in acks]
    # Every order acknowledged within 15 s of being said.
    delays = {n: min(s.at for s in sent if n in s.text) - said[n] for n in MEMBERS}
    assert max(delays.values()) <= 15.0, max(delays.items(), key=lambda kv: kv[1])
    # No 60-second window holds more than 20 messages; none in the room within 3 s of another.
    times = sorted(s.at for s in sent)
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= 20
    assert min((b - a for a, b in itertools.pairwise(times)), default=3.0) >= 2.9
    print(f"\n200 orders over 12 s: {len(sent)} bot messages (card included), "
          f"{len(acks) / 2:.1f} acks per 100 orders, slowest ack {max(delays.values()):.1f} s")


@pytest.mark.parametrize("mode", ["shadow", "observe", "live"])
async def test_shadow_and_observe_record_the_same_orders_and_post_nothing(
        mode: str, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with fake_puppet() as wx:
        _setup(wx)
        settings = replace(wx.settings(database_url=db_url), modes={ROOM: mode})
        runtime = LiveRuntime(settings, WechatyAdapter(settings, **ADAPTER_OPTIONS))
        await runtime.start()
        try:
            wx.bot_joins(ROOM, inviter="王团长")
            await _burst(wx, settings, spread=1.0)
            await _wait(lambda: len(_stored(db_url)) == len(MEMBERS), 30, "the orders")
        finally:
            await runtime.stop()  # flushes the acks and sends them within the limits
        sent: list[Sent] = list(wx.sent)
        leader = wx.contact("王团长").id
        room_id = wx.room(ROOM).id
    assert _stored(db_url) == _expected()
    in_room = [s for s in sent if s.room_id == room_id]
    private = [s for s in sent if s.to_id == leader]
    if mode == "live":
        assert in_room  # the greeting, the card and the acks
        assert private == []
    elif mode == "shadow":
        assert in_room == []
        text = "\n".join(s.text for s in private)
        assert "影子模式" in text
        assert "开团 #1" in text  # the card, privately
        assert all(name in text for name in MEMBERS)  # and every ack
        assert {s.to_id for s in sent} == {leader}
    else:
        assert sent == []
