"""The live scheduler: real APScheduler, persistent job store, real time, catch-up on start."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.app import build_app
from bot.clock import SystemClock
from bot.config import Settings
from bot.runtime import LiveRuntime, run_scheduled_job, runtime_key
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage

ROOM = "wx-room-1"
_ids = itertools.count()


class FakeAdapter:
    """A transport that records what the bot sends; tests push messages in."""

    def __init__(self, account_id: str | None = None) -> None:
        self.sent: list[OutgoingMessage] = []
        self.on_message = None
        self.account_id = account_id

    async def start(self, on_message, *, on_joined=None) -> None:  # type: ignore[no-untyped-def]
        self.on_message = on_message

    async def stop(self) -> None:
        self.on_message = None

    async def send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)

    async def say(self, name: str, text: str, at: datetime, *, owner: bool = False,
                  sender_id: str | None = None) -> None:
        assert self.on_message is not None
        await self.on_message(IncomingMessage(
            id=f"m{next(_ids)}", text=text, sender_id=sender_id or f"wx-{name}", sender_name=name,
            at=at, room_id=ROOM, room_name="幸福里", sender_is_owner=owner))


def _settings(db_url: str) -> Settings:
    return replace(Settings(), database_url=db_url, ack_window_seconds=0.2,
                   room_interval_seconds=0.05)


async def _wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds * 20)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def _open_deal_closing_in(adapter: FakeAdapter, settings: Settings, seconds: int) -> None:
    # "1小时后截团" said (1 h - seconds) ago: the deadline falls `seconds` from now.
    now = datetime.now(settings.tz)
    said = now - timedelta(hours=1) + timedelta(seconds=seconds)
    await adapter.say("王团长", "开团 赣南脐橙 29.9元/箱 2箱成团 1小时后截团", said, owner=True)
    await adapter.say("小周", "要两箱", said + timedelta(seconds=1))


async def test_deadline_closes_the_deal_in_real_time(db_url: str) -> None:
    settings = _settings(db_url)
    adapter = FakeAdapter()
    runtime = LiveRuntime(settings, adapter, flush_interval=0.05)
    await runtime.start()
    try:
        await _open_deal_closing_in(adapter, settings, 2)
        assert "close:1" in runtime.scheduler.job_times()
        closed = await _wait_for(lambda: any("已截团" in m.text for m in adapter.sent), 6)
        assert closed, [m.text for m in adapter.sent]
        await asyncio.sleep(0.5)
        announcements = [m for m in adapter.sent if "已截团" in m.text]
        assert len(announcements) == 1
        assert "已成团" in announcements[0].text
        acks = [m for m in adapter.sent if "小周" in m.text and "新增" in m.text]
        assert len(acks) == 1
    finally:
        await runtime.stop()


async def test_deadline_missed_while_down_is_closed_once_on_start(db_url: str) -> None:
    settings = _settings(db_url)
    first = FakeAdapter()
    runtime = LiveRuntime(settings, first)
    await runtime.start()
    await _open_deal_closing_in(first, settings, 1)
    await runtime.stop()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select id from apscheduler_jobs")).scalars().all()
    engine.dispose()
    assert "close:1" in stored  # the job outlived the process that planned it
    await asyncio.sleep(1.5)  # the deadline passes while no bot runs

    second = FakeAdapter()
    runtime = LiveRuntime(settings, second)
    await runtime.start()
    try:
        await asyncio.sleep(1.0)  # give APScheduler's own misfire run a chance to double-announce
        announcements = [m for m in second.sent if "已截团" in m.text]
        assert len(announcements) == 1, [m.text for m in second.sent]
        with runtime.app.sessions() as session:
            status = session.execute(sa.text("select status from deal where id = 1")).scalar_one()
        assert status == "succeeded"
    finally:
        await runtime.stop()

    third = FakeAdapter()
    runtime = LiveRuntime(settings, third)
    await runtime.start()
    await asyncio.sleep(0.3)
    await runtime.stop()
    assert not [m for m in third.sent if "已截团" in m.text]  # a later restart announces nothing


async def test_two_processes_one_leader_and_the_other_takes_over(db_url: str) -> None:
    """Two runtimes on one database: one runs the jobs; when it stops, the other takes over."""
    settings = _settings(db_url)
    a, b = FakeAdapter(), FakeAdapter()
    first = LiveRuntime(settings, a, flush_interval=0.05, leader_poll=0.2)
    second = LiveRuntime(settings, b, flush_interval=0.05, leader_poll=0.2)
    await first.start()
    await second.start()
    try:
        assert (first.leadership.is_leader, second.leadership.is_leader) == (True, False)
        # The deal is opened through the follower: its job goes to the shared store, and the
        # leader's scheduler finds it there.
        await _open_deal_closing_in(b, settings, 2)
        closed = await _wait_for(lambda: any("已截团" in m.text for m in a.sent + b.sent), 6)
        assert closed, [m.text for m in a.sent + b.sent]
        assert [m for m in a.sent if "已截团" in m.text]  # announced by the leader

        await first.stop()
        assert await _wait_for(lambda: second.leadership.is_leader, 3)
        now = datetime.now(settings.tz)
        await b.say("王团长", "开团 赣南脐橙 29.9元/箱 1箱成团 1小时后截团",
                    now - timedelta(hours=1) + timedelta(seconds=1), owner=True)
        closed = await _wait_for(lambda: sum("已截团" in m.text for m in a.sent + b.sent) == 2, 6)
        assert closed, [m.text for m in a.sent + b.sent]
        await asyncio.sleep(0.5)
        assert sum("已截团" in m.text for m in a.sent + b.sent) == 2  # each deal once
    finally:
        await second.stop()
        if first.leadership.is_leader:
            await first.stop()


async def test_two_bot_accounts_in_one_group_do_not_read_each_other(db_url: str) -> None:
    """Account B's ack ("已接 2/20箱") reaching bot A is the bot talking, not an order."""
    settings = _settings(db_url)
    a, b = FakeAdapter("wxid-bot-a"), FakeAdapter("wxid-bot-b")
    first = LiveRuntime(settings, a, flush_interval=0.05, leader_poll=0.1)
    second = LiveRuntime(settings, b, flush_interval=0.05, leader_poll=0.1)
    await first.start()
    await second.start()
    try:
        assert await _wait_for(lambda: first.app.dispatcher.bot_ids == {"wxid-bot-b"}, 3)
        now = datetime.now(settings.tz)
        await a.say("王团长", "开团 赣南脐橙 29.9元/箱 20箱成团 明晚8点截团", now, owner=True)
        await a.say("团购助手", "✅ #1 新增：小周 2箱\n📦 #1 赣南脐橙 ｜ 已接 2/20箱，还差18箱成团", now,
                    sender_id="wxid-bot-b")
        await a.say("小周", "要两箱", now)
        with first.app.sessions() as session:
            ordered = session.execute(sa.text("select ordered from deal where id = 1")).scalar_one()
        assert ordered == 2000  # 小周's 2 boxes (stored in thousandths); the bot's post is not one
    finally:
        await second.stop()
        await first.stop()


async def test_a_job_planned_under_another_spelling_of_the_url_still_finds_its_runtime(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(db_url)
    runtime = LiveRuntime(settings, FakeAdapter(), flush_interval=0.05)
    await runtime.start()
    try:
        with caplog.at_level(logging.WARNING, logger="bot.runtime"):
            await run_scheduled_job(runtime_key(db_url + "&spelled=otherwise"), "close", 1)
        assert "no runtime" not in caplog.text
    finally:
        await runtime.stop()
    with caplog.at_level(logging.WARNING, logger="bot.runtime"):
        await run_scheduled_job(runtime_key(db_url), "close", 1)
    assert "no runtime" in caplog.text  # (and with none running, it says so)


# One bot process: starts at a shared time, says whether it leads, stops when told to.
_STARTER = """
import asyncio, sys, time
from dataclasses import replace
from bot.config import Settings
from bot.runtime import LiveRuntime

class Quiet:
    async def start(self, on_message, *, on_joined=None): pass
    async def stop(self): pass
    async def send(self, message): pass

async def main():
    while time.time() < float(sys.argv[2]):
        pass
    runtime = LiveRuntime(replace(Settings(), database_url=sys.argv[1]), Quiet())
    await runtime.start()
    print("leads" if runtime.leadership.is_leader else "follows", flush=True)
    sys.stdin.read()  # running until the test has heard from every process
    await runtime.stop()

asyncio.run(main())
"""


def test_bots_starting_together_on_a_new_database_all_start(db_url: str) -> None:
    # Three accounts' processes started at once on an empty database: each creates the
    # tables it finds missing (ours through the migrations, APScheduler's job table), and
    # without a lock the slower ones fail on a table another one has just made.
    go = time.time() + 3  # after the imports, so the three really start together
    procs = [subprocess.Popen([sys.executable, "-c", _STARTER, db_url, str(go)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1])
             for _ in range(3)]
    said = [proc.stdout.readline().strip() for proc in procs]  # type: ignore[union-attr]
    outcomes = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err[-2000:] for _, err in outcomes]
    assert sorted(said) == ["follows", "follows", "leads"]  # all running at once, one leads


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_job_that_hits_a_transient_database_error_runs_again(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # The close job waits for the deal's row lock. Here another transaction holds it for
    # 0.4 s while the job's connection gives up waiting after 0.1 s (lock_timeout): a
    # transient error, like a deadlock with a batch of orders on the same deal. A scheduled
    # job runs once, so without a retry the deadline would go unannounced.
    impatient = db_url.replace("options=", "options=-clock_timeout%3D100%20", 1)
    settings = _settings(impatient)
    sent: list[OutgoingMessage] = []

    async def keep(msg: OutgoingMessage) -> None:
        sent.append(msg)

    app = build_app(settings, SystemClock(settings.tz), keep, VirtualScheduler(), impatient)
    holder = sa.create_engine(db_url)
    try:
        now = datetime.now(settings.tz)
        assert await app.dispatcher.dispatch(IncomingMessage(
            id="open", text="开团 赣南脐橙 29.9元/箱 2箱成团 1小时后截团", sender_id="wx-王团长",
            sender_name="王团长", at=now - timedelta(hours=1), room_id=ROOM, room_name="幸福里",
            sender_is_owner=True))
        with holder.connect() as conn:
            conn.execute(sa.text("select id from deal where id = 1 for update"))
            release = threading.Timer(0.4, conn.rollback)
            release.start()
            with caplog.at_level(logging.WARNING, logger="bot.jobs"):
                await app.run_job("close", 1)
            release.join()
        assert "database error in job close of deal 1" in caplog.text
        assert [m.text for m in sent if "截团" in m.text and "#1" in m.text], [m.text for m in sent]
        with app.sessions() as session:
            assert session.execute(sa.text("select status from deal where id = 1")).scalar_one() == "failed"
    finally:
        holder.dispose()
        app.engine.dispose()
