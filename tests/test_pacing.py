"""The pacer between outbox and transport: limits, merging, retries, modes (real asyncio time)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.config import Settings
from bot.pacing import MAX_MERGED_CHARS, Pacer
from bot.types import OutgoingMessage

FAST = Settings(room_interval_seconds=0.2, account_per_minute=1000, send_retries=2,
                retry_base_seconds=0.05)


class Transport:
    """Records what reaches the transport and when; can be told to fail."""

    def __init__(self, failures: int = 0, error: type[Exception] = RuntimeError,
                 slow: float = 0.0) -> None:
        self.sent: list[tuple[float, OutgoingMessage]] = []
        self.failures = failures
        self.error = error
        self.slow = slow
        self.calls = 0

    async def send(self, msg: OutgoingMessage) -> None:
        self.calls += 1
        await asyncio.sleep(self.slow)
        if self.failures:
            self.failures -= 1
            raise self.error("send rejected")
        self.sent.append((time.monotonic(), msg))


def room_msg(text: str, room: str = "一号群", mentions: tuple[str, ...] = ()) -> OutgoingMessage:
    return OutgoingMessage(text, room_id=f"r:{room}", room_name=room, mentions=mentions)


@contextlib.asynccontextmanager
async def running(pacer: Pacer) -> AsyncIterator[Pacer]:
    task = asyncio.create_task(pacer.run())
    try:
        yield pacer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_burst_in_one_room_is_sent_as_few_spaced_messages() -> None:
    transport = Transport()
    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        for i in range(12):
            await pacer.submit(room_msg(f"消息{i}", mentions=(f"人{i % 3}",)))
            await asyncio.sleep(0.03)
        await pacer.drain(5)
    times = [t for t, _ in transport.sent]
    assert 2 <= len(times) <= 4  # 12 messages over ~0.36 s at one per 0.2 s
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))
    text = "\n\n".join(m.text for _, m in transport.sent)
    assert [f"消息{i}" in text for i in range(12)] == [True] * 12
    assert text.index("消息3") < text.index("消息11")  # order kept
    assert len(transport.sent[-1][1].mentions) == len(set(transport.sent[-1][1].mentions))


async def test_rooms_do_not_wait_for_each_other_but_the_account_limit_holds() -> None:
    settings = replace(FAST, account_per_minute=4)
    transport = Transport()
    async with running(Pacer(settings, transport.send, lambda _: [], account_window=0.5)) as pacer:
        for i in range(10):
            await pacer.submit(room_msg("到货了", room=f"群{i}"))
        await pacer.drain(5)
    times = [t for t, _ in transport.sent]
    assert len(times) == 10
    assert max(sum(1 for u in times if t <= u < t + 0.49) for t in times) <= 4
    assert times[3] - times[0] < 0.1  # the first four went at once


async def test_a_long_queue_is_split_at_a_readable_length() -> None:
    transport = Transport()
    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        for i in range(8):
            await pacer.submit(room_msg(f"{i}" + "长" * 500))
        await pacer.drain(5)
    assert all(len(m.text) <= MAX_MERGED_CHARS for _, m in transport.sent)
    assert sum(m.text.count("长" * 500) for _, m in transport.sent) == 8


async def test_a_failed_send_is_retried_and_delivered_once() -> None:
    transport = Transport(failures=2)
    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        await pacer.submit(room_msg("截团啦"))
        await pacer.drain(5)
    assert [m.text for _, m in transport.sent] == ["截团啦"]
    assert transport.calls == 3


async def test_a_send_that_fails_for_good_is_logged_with_its_text(
        caplog: pytest.LogCaptureFixture) -> None:
    transport = Transport(failures=100)
    with caplog.at_level(logging.ERROR, logger="bot.pacing"):
        async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
            await pacer.submit(room_msg("#3 到货啦 @张三"))
            await pacer.drain(5)
    assert transport.calls == FAST.send_retries + 1
    assert [m.text for m in pacer.failed] == ["#3 到货啦 @张三"]
    assert "#3 到货啦 @张三" in caplog.text


async def test_shadow_mode_sends_privately_to_the_leaders_and_nothing_to_the_room() -> None:
    settings = replace(FAST, modes={"一号群": "shadow"})
    transport = Transport()
    leaders = {"r:一号群": [("w1", "王团长"), ("w2", "张姐")]}
    async with running(Pacer(settings, transport.send, lambda r: leaders.get(r, []))) as pacer:
        await pacer.submit(room_msg("#1 山东富士苹果 开团啦"))
        await pacer.submit(room_msg("开团啦", room="二号群"))
        await pacer.drain(5)
    sent = [m for _, m in transport.sent]
    assert sorted((m.to_name or "", m.room_id or "") for m in sent) == [
        ("", "r:二号群"), ("张姐", ""), ("王团长", "")]
    assert all("一号群" in m.text and "#1 山东富士苹果" in m.text for m in sent if m.to_id)


async def test_observe_mode_posts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(FAST, default_mode="observe")
    transport = Transport()
    with caplog.at_level(logging.INFO, logger="bot.pacing"):
        async with running(Pacer(settings, transport.send, lambda _: [("w1", "王团长")])) as pacer:
            await pacer.submit(room_msg("#1 开团啦"))
            await pacer.submit(OutgoingMessage("你的订单", to_id="p1", to_name="张三"))
            await pacer.drain(5)
    assert [(m.to_name, m.text) for _, m in transport.sent] == [("张三", "你的订单")]
    assert "#1 开团啦" in caplog.text


async def test_receipts_come_after_sending_for_every_merged_part() -> None:
    transport = Transport(failures=1)
    confirmed: list[str] = []

    def receipt(name: str):  # type: ignore[no-untyped-def]
        async def confirm() -> None:
            assert any(name in m.text for _, m in transport.sent) or name == "放弃"
            confirmed.append(name)
        return confirm

    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        await pacer.submit(replace(room_msg("第一条"), receipt=receipt("第一条")))
        for text in ("第二条", "第三条"):
            await pacer.submit(replace(room_msg(text), receipt=receipt(text)))
        await pacer.drain(5)
    assert confirmed == ["第一条", "第二条", "第三条"]

    failing = Transport(failures=100)
    confirmed.clear()
    async with running(Pacer(FAST, failing.send, lambda _: [])) as pacer:
        await pacer.submit(replace(room_msg("到货了"), receipt=receipt("放弃")))
        await pacer.drain(5)
    assert confirmed == ["放弃"]  # given up on (and logged): not resent forever


async def test_a_disconnected_transport_is_waited_for_beyond_the_retry_count() -> None:
    transport = Transport(failures=FAST.send_retries + 3, error=ConnectionError)
    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        await pacer.submit(room_msg("截团啦"))
        await pacer.drain(10)
    assert [m.text for _, m in transport.sent] == ["截团啦"]
    assert pacer.failed == []


async def test_a_message_queued_while_its_chat_is_sending_is_sent_too() -> None:
    transport = Transport(slow=0.1)
    async with running(Pacer(FAST, transport.send, lambda _: [])) as pacer:
        await pacer.submit(room_msg("第一条"))
        await asyncio.sleep(0.05)  # the first is in flight
        await pacer.submit(room_msg("第二条"))
        await pacer.submit(room_msg("第三条"))
        await pacer.drain(5)
        await pacer.submit(room_msg("第四条"))
        await pacer.drain(5)
    assert "\n\n".join(m.text for _, m in transport.sent).count("条") == 4
    assert pacer.pending == 0
