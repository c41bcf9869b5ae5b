"""Several dispatchers (each with its own engine, as separate workers would have) handle
orders for one deal at once: the stock and the per-member limit hold, and a message that
reaches two of them is handled once."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from chat import Chat

from bot.app import App, build_app
from bot.clock import ManualClock
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage

WORKERS = 4
MEMBERS = 24


async def _ignore(_: OutgoingMessage) -> None:
    return None


def _worker(app: App, messages: list[IncomingMessage], start: threading.Barrier,
            handled: list[int], batch: int) -> None:
    start.wait(timeout=30)

    async def run() -> int:
        chunks = [messages[i:i + batch] for i in range(0, len(messages), batch)]
        return sum([sum(await app.dispatcher.dispatch_batch(chunk)) for chunk in chunks])

    handled.append(asyncio.run(run()))


# One message per transaction, and batches (group commit) that contend for the same rows.
@pytest.mark.parametrize("batch", [1, 8])
async def test_concurrent_orders_keep_stock_limits_and_exactly_once(db_url: str, batch: int) -> None:
    chat = Chat(db_url)
    try:
        await chat.room("测试群")
        await chat.leader("王团长")
        await chat.say("王团长", "开团 阳澄湖大闸蟹 128元/盒 限量30盒 每人限购3盒 明晚8点截团")
        now = chat.clock.now() + timedelta(seconds=5)
        # 24 members each ask for 2 boxes and then 2 more (the second would pass the limit
        # of 3): 48 distinct messages for a stock of 30. Every message goes to two workers.
        messages = [IncomingMessage(
            id=f"m-{n}-{k}", text="要两盒", sender_id=f"wx-{n}", sender_name=f"邻居{n}", at=now,
            room_id="replay:room:测试群", room_name="测试群") for n in range(MEMBERS) for k in range(2)]
        shares = [[m for i, m in enumerate(messages) if i % WORKERS in (w, (w + 1) % WORKERS)]
                  for w in range(WORKERS)]
        # Each worker has its own app and engine (built here: migrations run one at a time).
        apps = [build_app(chat.settings, ManualClock(now), _ignore, VirtualScheduler(), db_url)
                for _ in range(WORKERS)]
        start = threading.Barrier(WORKERS)
        handled: list[int] = []
        threads = [threading.Thread(target=_worker, args=(app, share, start, handled, batch))
                   for app, share in zip(apps, shares, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for app in apps:
            app.engine.dispose()
        assert len(handled) == WORKERS
        assert sum(handled) == len(messages)  # each message handled by exactly one worker

        orders = chat.orders()
        total = sum(q for lines in orders.values() for q in lines.values())
        assert total == 30  # sold out, never oversold
        assert all(q <= 3 for lines in orders.values() for q in lines.values())
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            counted = conn.execute(sa.text("select ordered from deal where id = 1")).scalar_one()
            items = conn.execute(sa.text("select ordered from item where deal_id = 1")).scalar_one()
            processed = conn.execute(sa.text(
                "select count(*) from processedmessage where id like 'm-%'")).scalar_one()
        engine.dispose()
        assert Decimal(counted) / 1000 == Decimal(items) / 1000 == total  # counters agree
        assert processed == len(messages)
    finally:
        chat.close()


def test_a_close_waits_for_an_order_in_flight_and_counts_it(db_url: str) -> None:
    """截团 while a member's order that reaches the threshold is still uncommitted: on
    PostgreSQL the close waits for it and closes the deal as succeeded, not failed."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from models import ops
    from models.db import create_schema, make_engine
    from models.tables import Deal, Item

    engine = make_engine(db_url)
    create_schema(engine)
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as s:
        room = ops.upsert_room(s, "r1", "测试群")
        leader = ops.upsert_member(s, "wx-leader", "王团长")
        member = ops.upsert_member(s, "wx-1", "邻居")
        deal = Deal(room_id=room.id or 0, leader_id=leader.id or 0, title="草莓",
                    threshold=Decimal(3), created_at=now)
        s.add(deal)
        s.flush()
        item = Item(deal_id=deal.id or 0, no=1, name="草莓", unit="盒")
        s.add(item)
        s.commit()
    ordering = Session(engine, expire_on_commit=False)
    closed: list[str | None] = []

    def close() -> None:
        with Session(engine, expire_on_commit=False) as s:
            closing = s.get(Deal, deal.id)
            assert closing is not None
            closed.append(ops.close_deal(s, closing, now))
            s.commit()

    try:
        change = ops.change_order(ordering, ordering.get(Deal, deal.id), ordering.get(Item, item.id),
                                  member, Decimal(3), "add", now)
        assert isinstance(change, ops.OrderChange)
        if engine.dialect.name == "sqlite":
            ordering.commit()  # SQLite has one writer at a time: the close simply comes after
            close()
        else:
            closer = threading.Thread(target=close)
            closer.start()
            closer.join(timeout=0.5)
            assert closer.is_alive(), "the close did not wait for the order's row lock"
            ordering.commit()
            closer.join(timeout=10)
    finally:
        ordering.close()
    assert closed == ["succeeded"]
    engine.dispose()
