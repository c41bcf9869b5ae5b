"""Several bot processes on one PostgreSQL database: exactly once, stock and limits, one ack per
window per room, each deadline announced once (issue 4, acceptance 2)."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support.workers import Worker, inbound, open_deals, stop_all, wait_for

from bot.config import Settings

ROOMS = 20
EXACT = range(14)  # rooms where every order fits: the stored quantities are known exactly
PRESSURE = range(14, 20)  # rooms with 30 boxes in stock and members trying for more than 3
MEMBERS = 100
WINDOW = 1.0


def _member(room: int, k: int) -> str:
    return f"r{room:02d}m{k:03d}"


def _orders() -> tuple[dict[int, list[dict[str, Any]]], dict[str, int]]:
    """Per room, 100 order messages; and the exact quantity each exact-room member ends with."""
    rng = random.Random(7)
    by_room: dict[int, list[dict[str, Any]]] = defaultdict(list)
    expected: dict[str, int] = {}
    for room in EXACT:
        for k in range(MEMBERS):
            qty = 1 + k % 3
            expected[_member(room, k)] = qty
            by_room[room].append(inbound(f"o-{room}-{k}", room, _member(room, k),
                                         rng.choice([f"我要{qty}箱", f"{qty}箱", f"来{qty}箱"])))
    for room in PRESSURE:
        for k in range(MEMBERS // 2):  # 50 members, two messages each: 2 + 2 boxes > limit 3
            for turn, text in enumerate(("我要2箱", "再加两箱")):
                by_room[room].append(inbound(f"o-{room}-{k}-{turn}", room, _member(room, k), text))
    return by_room, expected


def _inboxes(by_room: dict[int, list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Room r goes to worker r % 3; room 0 also to worker 1 (two bot accounts in one group).
    Within a worker, rooms interleave, and about 5% of the messages are delivered twice."""
    rng = random.Random(11)
    inboxes: list[list[dict[str, Any]]] = [[], [], []]
    for room, msgs in by_room.items():
        owners = [room % 3] + ([1] if room == 0 else [])
        for w in owners:
            inboxes[w].extend(msgs)
    for box in inboxes:
        rng.shuffle(box)
        # keep each member's own messages in the order they said them
        per_member: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in box:
            per_member[m["sender_name"]].append(m)
        for msgs in per_member.values():
            msgs.sort(key=lambda m: m["id"])
        iters = {name: iter(msgs) for name, msgs in per_member.items()}
        box[:] = [next(iters[m["sender_name"]]) for m in box]
        for m in rng.sample(box, len(box) // 20):
            box.insert(min(len(box), box.index(m) + rng.randint(1, 50)), m)
    return inboxes


# The close announcement; the pacer may have merged the acks sent just before it into it.
_CLOSED = re.compile(r"(?m)^⏰ #(\d+) .*已截团")


def _kind(text: str) -> str:
    if _CLOSED.search(text):
        return "closed"
    if any(mark in text for mark in ("新增", "修改", "已取消", "⚠️", "📦", "❓")):
        return "ack"
    return "other"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_three_workers_one_truth(db_url: str, tmp_path: Path) -> None:
    start = datetime.now(Settings().tz)
    # Pressure rooms close during the burst, exact rooms after it.
    deadlines = {room: start + timedelta(seconds=40 if room in EXACT else 14 + (room - 14))
                 for room in range(ROOMS)}
    await open_deals(db_url, {
        room: (f"开团 楼栋{room:02d}苹果 10元/箱 5箱成团{'' if room in EXACT else ' 限量30箱'}"
               " 每人限购3箱 1小时后截团", deadline - timedelta(hours=1))
        for room, deadline in deadlines.items()})
    by_room, expected = _orders()
    inboxes = _inboxes(by_room)
    assert sum(len(msgs) for msgs in by_room.values()) == 2000
    workers = [Worker(f"w{i}", tmp_path, db_url, WINDOW) for i in range(3)]
    go = tmp_path / "go"
    try:
        for w, box in zip(workers, inboxes, strict=True):
            w.write_inbox(box)
            w.start(go)
        await asyncio.to_thread(wait_for, lambda: all(w.ready for w in workers), 60, "workers to start")
        go.touch()
        began = time.time()
        await asyncio.to_thread(wait_for, lambda: all(w.done for w in workers), 120, "the burst")
        burst_seconds = time.time() - began
        assert datetime.now(start.tzinfo) < min(deadlines[r] for r in EXACT), (
            f"the burst took {burst_seconds:.1f} s: too slow to finish before the exact rooms closed")
        last = max(deadlines.values())
        await asyncio.to_thread(
            wait_for, lambda: datetime.now(start.tzinfo) > last + timedelta(seconds=2), 90, "deadlines")
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                await asyncio.to_thread(wait_for, lambda: conn.execute(sa.text(
                    "select count(*) from pendingack")).scalar_one() == 0, 20, "acks to go out")
            codes = [w.stop() for w in workers]
            assert codes == [0, 0, 0], "\n".join(w.log()[-2000:] for w in workers)
            sent = [m for w in workers for m in w.sent()]
            with engine.connect() as conn:
                _check_database(conn, expected)
        finally:
            engine.dispose()
    finally:
        stop_all(workers)
    _check_acks(sent, expected)
    _check_deadlines(sent)


def _check_database(conn: sa.Connection, expected: dict[str, int]) -> None:
    # Every distinct message handled exactly once (2,000 orders + 20 开团).
    assert conn.execute(sa.text("select count(*) from processedmessage")).scalar_one() == 2020
    lines = conn.execute(sa.text(
        "select d.id, d.stock, d.ordered, d.limit_per_member, m.name, l.qty"
        " from orderline l join \"order\" o on o.id = l.order_id join deal d on d.id = o.deal_id"
        " join member m on m.id = o.member_id")).all()
    per_deal: Counter[int] = Counter()
    per_member: Counter[str] = Counter()
    # Quantities are stored as integer thousandths (models.types.Quantity).
    for deal_id, _stock, _ordered, _limit, name, qty in lines:
        per_deal[deal_id] += qty // 1000
        per_member[name] += qty // 1000
    for deal_id, stock, ordered, limit in (
            (d, s // 1000 if s is not None else None, o // 1000, lim // 1000)
            for d, s, o, lim in conn.execute(sa.text(
                "select id, stock, ordered, limit_per_member from deal")).all()):
        assert ordered == per_deal[deal_id], f"#{deal_id}: counter {ordered} != lines"
        assert stock is None or ordered <= stock, f"#{deal_id} oversold: {ordered} > {stock}"
        assert limit == 3
    assert max(per_member.values()) <= 3
    # Exact rooms: each member's one order, counted once, nothing lost.
    assert {name: int(per_member[name]) for name in expected} == expected
    # Pressure rooms: stock 30 each; 50 members asked for 4 boxes each, 3 at most allowed.
    assert conn.execute(sa.text(
        "select count(*) from \"order\" group by deal_id, member_id, coalesce(placed_for, '')"
        " having count(*) > 1")).all() == []


def _check_acks(sent: list[dict[str, Any]], expected: dict[str, int]) -> None:
    by_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in sorted(sent, key=lambda m: m["t"]):
        if m["room_id"]:
            by_room[m["room_id"]].append(m)
    for room, msgs in by_room.items():
        for prev, cur in itertools.pairwise(msgs):
            if _kind(prev["text"]) == _kind(cur["text"]) == "ack":
                gap = cur["t"] - prev["t"]
                # Two acks in a row for one room are about a window apart. The window of an ack
                # starts at its message's time, before its transaction commits; on two cores
                # shared by three workers and PostgreSQL a commit can lag that by a few hundred
                # ms, so the gap may shrink by that much, never to a second message at once.
                assert gap >= WINDOW * 0.5, f"{room}: two acks {gap:.2f} s apart"
    ack_text = "\n".join(m["text"] for m in sent if _kind(m["text"]) == "ack")
    # Every exact-room order acknowledged, once (a redelivered or shared message is not acked again).
    counts = {name: len(re.findall(rf"{name} {qty}箱", ack_text)) for name, qty in expected.items()}
    assert Counter(counts.values()) == Counter({1: len(expected)})


def _check_deadlines(sent: list[dict[str, Any]]) -> None:
    closed = Counter(_CLOSED.search(m["text"]).group(1)  # type: ignore[union-attr]
                     for m in sent if _kind(m["text"]) == "closed")
    assert closed == Counter({str(d): 1 for d in range(1, ROOMS + 1)})
