"""Burst benchmark: a generated burst of member orders through the full pipeline.

dispatcher → parser → SQLite (a file, WAL, as in production) → outbox, on a virtual clock,
timed on the wall clock per message, next to a raw ``sqlite3`` baseline that inserts and
commits the same number of rows, one transaction each, in the same run.

    python benchmarks/burst.py                      # 10,000 orders over 50 rooms
    taskset -c 0 python benchmarks/burst.py         # on one core
    python benchmarks/burst.py --messages 2000 --profile   # cProfile of the burst

Exit status 0 when every target is met and the stored orders match the generator, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.replay import Replay
from bot.app import build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage

TARGET_RATE = 1000.0  # messages per second
TARGET_P99_MS = 20.0
TARGET_BOT_PER_100 = 10.0

CN = {1: "一", 2: "两", 3: "三", 4: "四", 5: "五"}
# (title, price, unit, extra clause): no stock limit, or one far above what the burst orders.
PRODUCTS = [
    ("山东富士苹果", "39.9", "箱", "20箱成团"),
    ("卤牛肉", "58", "份", "30份成团"),
    ("赣南脐橙", "5.8", "斤", "50斤成团"),
    ("东北大米", "45", "袋", "限量90000袋"),
    ("散养土鸡蛋", "25", "盒", "限量90000盒"),
    ("阳光玫瑰葡萄", "69", "箱", ""),
    ("手工水饺", "32", "袋", "10袋成团"),
    ("鲜牛奶", "88", "箱", ""),
]
DEADLINES = ["后天晚8点截团", "12月20日晚8点截团", "下周一晚8点截团", "12月5日中午12点截团"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
SUFFIXES = ["姐", "阿姨", "妈妈", "哥", "奶奶", "叔", "宝妈", "小妹", "老师", "大爷"]
NOISE = ["什么时候到货？", "谢谢团长", "收到", "上次买的很好吃", "几点截团？", "团长辛苦了",
         "甜不甜啊？", "哈哈哈", "今天送吗？", "好的"]


@dataclass(frozen=True)
class Planned:
    """One generated message and what it should do to its sender's order."""

    msg: IncomingMessage
    kind: str  # first / add / set / noise
    qty: int  # units added (first, add), the new total (set), 0 for noise


def first_order(rng: random.Random, unit: str) -> tuple[str, int]:
    """A member's first order in varied wording, and its quantity."""
    n = rng.randint(1, 5)
    return rng.choice([
        ("跟一单", 1), ("+1", 1), ("跟团", 1), ("接龙+1", 1), ("我也要一" + unit, 1),
        ("算我一份", 1), ("我要1", 1),
        (f"我要{n}{unit}", n), (f"来{CN[n]}{unit}", n), (f"x{n}", n), (f"+{n}", n),
        (f"要{CN[n]}{unit} {rng.randint(1, 30)}号楼", n), (f"订{n}{unit}", n),
        (f"要{n}{unit}", n),
    ])


def change_order(rng: random.Random, unit: str) -> tuple[str, str, int]:
    """A later message of the same member: a new total or more of the same."""
    n = rng.randint(1, 5)
    return rng.choice([
        ("set", f"改成{n}{unit}", n), ("set", f"改为{CN[n]}{unit}", n),
        ("add", f"再加一{unit}", 1), ("add", f"再来{n}{unit}", n),
    ])


def generate(n_orders: int, n_rooms: int, rate: float, noise: float, start: datetime,
             seed: int) -> tuple[list[IncomingMessage], list[Planned], dict[tuple[str, str], int]]:
    """The leaders' 开团 commands, the burst, and the quantity each (room, member) should end with."""
    rng = random.Random(seed)
    rooms = [(f"bench:room:{r}", f"幸福里{r + 1}号楼团购群") for r in range(n_rooms)]
    units: dict[str, str] = {}
    setup: list[IncomingMessage] = []
    for r, (room_id, room_name) in enumerate(rooms):
        title, price, unit, extra = PRODUCTS[r % len(PRODUCTS)]
        units[room_id] = unit
        text = f"开团 {title} {price}元/{unit} {extra} {DEADLINES[r % len(DEADLINES)]}".replace("  ", " ")
        setup.append(IncomingMessage(
            id=f"bench:open:{r}", text=text, sender_id=f"bench:leader:{r}",
            sender_name=f"{SURNAMES[r % len(SURNAMES)]}团长", at=start,
            room_id=room_id, room_name=room_name, sender_is_owner=True))

    # About four in five orders come from a member's first message, the rest change an order.
    per_room = math.ceil(n_orders / n_rooms)
    pool_size = max(1, round(per_room * 0.8))
    ordered: dict[str, list[tuple[str, str]]] = {room_id: [] for room_id, _ in rooms}
    unused: dict[str, int] = {room_id: 0 for room_id, _ in rooms}
    expected: dict[tuple[str, str], int] = {}
    n_noise = round(n_orders * noise)
    kinds = ["order"] * n_orders + ["noise"] * n_noise
    rng.shuffle(kinds)
    step = 1.0 / rate
    burst: list[Planned] = []
    for i, what in enumerate(kinds):
        room_id, room_name = rooms[rng.randrange(n_rooms)]
        at = start + timedelta(seconds=60 + i * step)
        unit = units[room_id]
        if what == "noise":
            k = rng.randrange(10_000)
            name = f"{SURNAMES[k % len(SURNAMES)]}{SUFFIXES[k % len(SUFFIXES)]}{k}"
            sender = (f"bench:lurker:{k}", name)
            text, kind, qty = rng.choice(NOISE), "noise", 0
        elif ordered[room_id] and (unused[room_id] >= pool_size or rng.random() < 0.2):
            sender = rng.choice(ordered[room_id])
            kind, text, qty = change_order(rng, unit)
            key = (room_id, sender[0])
            expected[key] = qty if kind == "set" else expected[key] + qty
        else:
            k = unused[room_id]
            unused[room_id] += 1
            r = int(room_id.rsplit(":", 1)[1])
            name = f"{SURNAMES[(k * 7 + r) % len(SURNAMES)]}{SUFFIXES[k % len(SUFFIXES)]}{r}-{k}"
            sender = (f"bench:member:{r}:{k}", name)
            ordered[room_id].append(sender)
            text, qty = first_order(rng, unit)
            kind = "first"
            expected[(room_id, sender[0])] = qty
        msg = IncomingMessage(id=f"bench:msg:{i}", text=text, sender_id=sender[0],
                              sender_name=sender[1], at=at, room_id=room_id, room_name=room_name)
        burst.append(Planned(msg, kind, qty))
    return setup, burst, expected


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


@dataclass
class PipelineResult:
    seconds: float
    latencies_ms: list[float]
    orders: int
    noise: int
    bot_messages: int
    setup_bot_messages: int
    handled: int
    stored_qty: int
    expected_qty: int
    mismatched_members: int
    processed_rows: int


async def run_pipeline(n_orders: int, n_rooms: int, rate: float, noise: float, seed: int,
                       workdir: Path, profiler: cProfile.Profile | None) -> PipelineResult:
    settings = Settings()
    start = datetime(2026, 11, 24, 9, 0, tzinfo=settings.tz)
    setup, burst, expected = generate(n_orders, n_rooms, rate, noise, start, seed)
    sent: list[OutgoingMessage] = []

    async def send(message: OutgoingMessage) -> None:
        sent.append(message)

    db_path = workdir / "burst.db"
    clock = ManualClock(start)
    scheduler = VirtualScheduler()
    app = build_app(settings, clock, send, scheduler, f"sqlite:///{db_path}")
    replay = Replay(app, clock, scheduler, "burst")
    try:
        for msg in setup:  # not measured: the leaders open their deals
            if not await app.dispatcher.dispatch(msg):
                raise SystemExit(f"setup message {msg.id} was not handled")
        setup_sent = len(sent)
        if setup_sent != len(setup):
            raise SystemExit(f"expected {len(setup)} deal cards, the bot sent {setup_sent}")

        latencies: list[float] = []
        handled = 0
        dispatch = app.dispatcher.dispatch
        perf = time.perf_counter
        if profiler is not None:
            profiler.enable()
        t0 = perf()
        for planned in burst:
            msg = planned.msg
            t = perf()
            # Exactly what the replay does between messages: move the clock, flush due acks
            # (and run due jobs), then hand the message to the dispatcher.
            await replay.advance_to(msg.at)
            handled += await dispatch(msg)
            latencies.append((perf() - t) * 1000)
        t = perf()
        await replay.advance_to(clock.now() + timedelta(seconds=settings.ack_window_seconds + 1))
        await app.outbox.flush_all()
        latencies.append((perf() - t) * 1000)  # the final flush, counted as one more step
        elapsed = perf() - t0
        if profiler is not None:
            profiler.disable()
        bot_messages = len(sent) - setup_sent
    finally:
        app.engine.dispose()

    # Check what was stored with plain SQL, so a fast run cannot be one that dropped work.
    con = sqlite3.connect(db_path)
    try:
        rows = con.execute(
            """SELECT r.platform_id, m.platform_id, ol.qty
                 FROM orderline ol JOIN "order" o ON o.id = ol.order_id
                 JOIN deal d ON d.id = o.deal_id JOIN room r ON r.id = d.room_id
                 JOIN member m ON m.id = o.member_id
                WHERE o.status = 'active'""").fetchall()
        processed = con.execute("SELECT COUNT(*) FROM processedmessage").fetchone()[0]
    finally:
        con.close()
    stored: Counter[tuple[str, str]] = Counter()
    for room_id, member_id, qty in rows:
        stored[(room_id, member_id)] += qty / 1000  # stored as integer thousandths
    keys = set(stored) | set(expected)
    mismatched = sum(1 for k in keys if stored.get(k, 0) != expected.get(k, 0))
    n_noise = sum(1 for p in burst if p.kind == "noise")
    return PipelineResult(elapsed, latencies, len(burst) - n_noise, n_noise, bot_messages,
                          setup_sent, handled, round(sum(stored.values())), sum(expected.values()),
                          mismatched, processed)


def run_baseline(n_rows: int, workdir: Path, seed: int) -> float:
    """Raw sqlite3: the app's pragmas, one INSERT and one COMMIT per row. Returns seconds."""
    rng = random.Random(seed)
    db_path = workdir / "baseline.db"
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("""CREATE TABLE message (id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
                   member_id TEXT NOT NULL, body TEXT NOT NULL, qty TEXT NOT NULL,
                   received_at TEXT NOT NULL)""")
    con.commit()
    rows = [(f"base:{i}", f"room:{rng.randrange(50)}", f"member:{rng.randrange(8000)}",
             rng.choice(["跟一单", "+1", "我要2箱", "来三份", "x2", "改成3箱"]), str(rng.randint(1, 5)),
             f"2026-11-24T09:{i // 6000 % 60:02d}:00+08:00") for i in range(n_rows)]
    t0 = time.perf_counter()
    for row in rows:
        con.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?, ?)", row)
        con.commit()
    elapsed = time.perf_counter() - t0
    count = con.execute("SELECT COUNT(*) FROM message").fetchone()[0]
    con.close()
    if count != n_rows:
        raise SystemExit(f"baseline stored {count} rows, expected {n_rows}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="order messages in the burst")
    ap.add_argument("--rooms", type=int, default=50, help="rooms, one open deal each")
    ap.add_argument("--rate", type=float, default=125.0,
                    help="arrival rate in virtual messages/s (default 125: 10,000 orders in ~84 s)")
    ap.add_argument("--noise", type=float, default=0.05,
                    help="chatter messages per order message, sent on top of the orders")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile the burst, print hotspots")
    args = ap.parse_args(argv)

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="tuangou-bench-") as tmp:
        workdir = Path(tmp)
        res = asyncio.run(run_pipeline(args.messages, args.rooms, args.rate, args.noise, args.seed,
                                       workdir, profiler))
        total = res.orders + res.noise
        base_s = run_baseline(total, workdir, args.seed)

    lat = sorted(res.latencies_ms)
    msg_rate = total / res.seconds
    order_rate = res.orders / res.seconds
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    per_100 = res.bot_messages / res.orders * 100 if res.orders else 0.0
    correct = (res.mismatched_members == 0 and res.stored_qty == res.expected_qty
               and res.handled == total and res.processed_rows == total + args.rooms)

    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print(f"burst: {res.orders} orders + {res.noise} chatter = {total} messages, {args.rooms} rooms, "
          f"{total / args.rate:.0f} s virtual, SQLite file (WAL, synchronous=NORMAL)")
    print(f"{'metric':<34}{'value':>14}  target")
    rows = [
        ("pipeline wall time", f"{res.seconds:.2f} s", ""),
        ("messages/s (all)", f"{msg_rate:,.0f}", ""),
        ("order messages/s", f"{order_rate:,.0f}",
         f">= {TARGET_RATE:,.0f}  {mark(order_rate >= TARGET_RATE)}"),
        ("latency p50", f"{p50:.2f} ms", ""),
        ("latency p99", f"{p99:.2f} ms", f"< {TARGET_P99_MS:.0f} ms  {mark(p99 < TARGET_P99_MS)}"),
        ("latency max", f"{lat[-1]:.2f} ms", ""),
        ("bot messages in burst", f"{res.bot_messages}", ""),
        ("bot messages / 100 orders", f"{per_100:.2f}",
         f"<= {TARGET_BOT_PER_100:.0f}  {mark(per_100 <= TARGET_BOT_PER_100)}"),
        ("raw sqlite3 baseline", f"{total / base_s:,.0f} rows/s", f"({base_s:.2f} s, 1 commit/row)"),
        ("pipeline time / baseline time", f"{res.seconds / base_s:.2f}x", ""),
        ("stored qty / generated qty", f"{res.stored_qty}/{res.expected_qty}",
         f"{res.mismatched_members} members differ  {mark(correct)}"),
        ("handled / processed rows", f"{res.handled}/{res.processed_rows - args.rooms}", ""),
    ]
    for name, value, target in rows:
        print(f"{name:<34}{value:>14}  {target}")
    ok = (order_rate >= TARGET_RATE and p99 < TARGET_P99_MS and per_100 <= TARGET_BOT_PER_100
          and correct)
    print("RESULT:", mark(ok))

    if profiler is not None:
        print()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(35)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
