"""The persistent ack queue: one message per window per room across workers, nothing lost."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from bot.app import build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.outbox import ORPHAN_AFTER, Outbox, decode_ack, encode_ack
from bot.render import Renderer
from bot.scheduler import VirtualScheduler
from bot.types import Ack, DealProgress, IncomingMessage, OutgoingMessage
from models import ops
from models.db import create_schema, make_engine, session_factory

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=Settings().tz)


def _ack(member: str, qty: str, room: str = "r1") -> Ack:
    return Ack("added", room, "幸福里", {"member": member, "deal_id": 1, "title": "苹果",
                                        "qty": Decimal(qty), "before": Decimal(0),
                                        "after": Decimal(qty), "unit": "箱", "item": None,
                                        "placed_for": None},
               DealProgress(1, "苹果", Decimal(qty), Decimal(20), "箱", None))


def test_an_ack_survives_the_queue_exactly() -> None:
    ack = _ack("张三", "2.5")
    assert decode_ack(encode_ack(ack)) == ack
    private = Ack("refused", "", "", {"member": "李四", "reason": "closed"}, None, "wx-li", "李四")
    assert decode_ack(encode_ack(private)) == private


class Worker:
    """One bot process's outbox over its own engine. With a ``lease`` its sender only queues,
    as the pacer does: what it got stays unconfirmed in ``sent`` until its receipt is awaited."""

    def __init__(self, url: str, *, lease: float | None = None) -> None:
        self.engine = make_engine(url)
        create_schema(self.engine)
        self.sessions = session_factory(self.engine)
        self.sent: list[OutgoingMessage] = []
        self.outbox = (Outbox(Renderer(), 10, self._send, self.sessions) if lease is None else
                       Outbox(Renderer(), 10, self._send, self.sessions, sender_confirms=True,
                              lease_seconds=lease))

    async def _send(self, msg: OutgoingMessage) -> None:
        self.sent.append(msg)

    def order(self, ack: Ack, at: datetime) -> None:
        with self.sessions() as session:
            ops.queue_acks(session, self.outbox.stage([ack], at))
            session.commit()
        self.outbox.staged(at)


async def test_two_workers_in_one_room_send_one_message_per_window(db_url: str) -> None:
    a, b = Worker(db_url), Worker(db_url)
    try:
        a.order(_ack("张三", "1"), T0)
        b.order(_ack("李四", "2"), T0 + timedelta(seconds=3))
        a.order(_ack("王五", "1", room="r2"), T0 + timedelta(seconds=4))
        await asyncio.gather(a.outbox.flush_due(T0 + timedelta(seconds=9)),
                             b.outbox.flush_due(T0 + timedelta(seconds=9)))
        assert a.sent + b.sent == []  # nothing due before the window has passed
        b.order(_ack("赵六", "3"), T0 + timedelta(seconds=9))
        await asyncio.gather(a.outbox.flush_due(T0 + timedelta(seconds=10)),
                             b.outbox.flush_due(T0 + timedelta(seconds=10)))
        sent = a.sent + b.sent
        assert len(sent) == 1  # room r1, claimed by one of them, with both workers' orders
        assert all(name in sent[0].text for name in ("张三", "李四", "赵六"))
        assert "王五" not in sent[0].text
        b.order(_ack("孙七", "1"), T0 + timedelta(seconds=11))  # a new window for r1
        await asyncio.gather(a.outbox.flush_due(T0 + timedelta(seconds=14)),
                             b.outbox.flush_due(T0 + timedelta(seconds=14)))
        assert [m.room_id for m in a.sent + b.sent] == ["r1", "r2"]
        assert a.outbox.pending == 1
        await a.outbox.flush_all()
        assert "孙七" in (a.sent + b.sent)[-1].text
        assert b.outbox.pending == 0
    finally:
        a.engine.dispose()
        b.engine.dispose()


async def test_queued_acks_outlive_the_worker_that_queued_them(db_url: str) -> None:
    a = Worker(db_url)
    a.order(_ack("张三", "1"), T0)
    a.engine.dispose()  # the worker dies before the window passes
    b = Worker(db_url)
    try:
        assert b.outbox.next_due() is None  # b never queued anything itself...
        b.outbox.serve("room:r1")  # ...but the room speaks to it (or redelivers to it)
        await b.outbox.flush_due(T0 + timedelta(seconds=10))  # and its flush loop finds them
        assert [("张三" in m.text) for m in b.sent] == [True]
    finally:
        b.engine.dispose()


async def test_a_worker_leaves_other_rooms_alone_unless_their_acks_are_orphaned(db_url: str) -> None:
    a, b = Worker(db_url), Worker(db_url)
    try:
        a.order(_ack("张三", "1"), T0)
        await b.outbox.flush_due(T0 + timedelta(seconds=15))
        assert b.sent == []  # room r1 is a's: b's account may not even be in it
        await b.outbox.flush_all()
        assert b.sent == []
        await b.outbox.flush_due(T0 + timedelta(seconds=10) + ORPHAN_AFTER)  # a went silent
        assert [("张三" in m.text) for m in b.sent] == [True]
    finally:
        a.engine.dispose()
        b.engine.dispose()


async def test_acks_leave_the_queue_only_when_sent_and_are_resent_after_the_lease(db_url: str) -> None:
    """A worker that claims acks and dies before sending them: after the lease another sends them."""
    dead, heir = Worker(db_url, lease=0.3), Worker(db_url, lease=0.3)
    try:
        dead.order(_ack("张三", "1"), T0)
        heir.outbox.serve("room:r1")
        await dead.outbox.flush_due(T0 + timedelta(seconds=10))
        assert len(dead.sent) == 1  # claimed, handed to a pacer that never gets to send it
        assert heir.outbox.pending == 1
        await heir.outbox.flush_due(T0 + timedelta(seconds=10))
        assert heir.sent == []  # within the lease nobody else takes them
        await asyncio.sleep(0.4)
        await heir.outbox.flush_due(T0 + timedelta(seconds=10))
        assert [("张三" in m.text) for m in heir.sent] == [True]
        assert heir.outbox.pending == 1  # heir's sender has not confirmed either...
        await heir.sent[0].receipt()  # type: ignore[misc]
        assert heir.outbox.pending == 0  # ...now it has
    finally:
        dead.engine.dispose()
        heir.engine.dispose()


async def test_a_live_worker_keeps_its_claim_while_the_sender_holds_the_message(db_url: str) -> None:
    """Pacing may hold an ack longer than the lease: its worker renews the claim meanwhile,
    so nobody sends it a second time."""
    slow, other = Worker(db_url, lease=0.3), Worker(db_url, lease=0.3)
    try:
        slow.order(_ack("张三", "1"), T0)
        other.outbox.serve("room:r1")
        await slow.outbox.flush_due(T0 + timedelta(seconds=10))
        assert len(slow.sent) == 1
        for _ in range(4):  # 0.6 s: twice the lease
            await asyncio.sleep(0.15)
            await slow.outbox.flush_due(T0 + timedelta(seconds=11))  # its flush loop ticks
            await other.outbox.flush_due(T0 + timedelta(seconds=11))
        assert other.sent == []
        await slow.sent[0].receipt()  # type: ignore[misc]
        assert slow.outbox.pending == 0
    finally:
        slow.engine.dispose()
        other.engine.dispose()


async def test_an_ack_waits_a_window_from_when_its_message_was_handled(db_url: str) -> None:
    # A message handled 30 s after it was said (redelivered after a crash, or run again
    # after its batch failed): its ack's window starts now, so it does not go out at once,
    # right after the ack another worker may just have sent for the room.
    settings = replace(Settings(), ack_window_seconds=10)
    clock = ManualClock(T0)
    sent: list[OutgoingMessage] = []

    async def keep(msg: OutgoingMessage) -> None:
        sent.append(msg)

    app = build_app(settings, clock, keep, VirtualScheduler(), db_url)
    try:
        def said(msg_id: str, name: str, text: str, ago: float) -> IncomingMessage:
            return IncomingMessage(id=msg_id, text=text, sender_id=f"wx-{name}", sender_name=name,
                                   at=T0 - timedelta(seconds=ago), room_id="r1", room_name="幸福里",
                                   sender_is_owner=name == "王团长")

        assert await app.dispatcher.dispatch(said("open", "王团长", "开团 苹果 10元/箱 明晚8点截团", 60))
        assert await app.dispatcher.dispatch(said("late", "张三", "要2箱", 30))
        await app.outbox.flush_due(T0 + timedelta(seconds=9))
        assert not [m for m in sent if "张三" in m.text]
        await app.outbox.flush_due(T0 + timedelta(seconds=10))
        assert [m for m in sent if "张三" in m.text]
    finally:
        app.engine.dispose()
