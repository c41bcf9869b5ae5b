"""Burst benchmark: a generated burst of member orders through the full pipeline.

dispatcher → parser → database → outbox, on a virtual clock, timed on the wall clock per
message, next to a raw-driver baseline that inserts and commits the same number of rows, one
transaction each, in the same run. Messages go in batches of up to ``--batch`` (default: the
config's ``batch_messages``), one transaction each, as the live runtime handles the messages
that queue up during a burst; a message's latency is its whole batch's. One run measures,
and prints in one table:

- SQLite (a file, WAL, synchronous=NORMAL, as in production), one worker;
- PostgreSQL, one worker, and PostgreSQL with ``--workers`` processes (default 3), each
  running its own app and engine on a disjoint share of the rooms, started together;
- raw ``sqlite3`` and raw ``psycopg`` (1 process and ``--workers`` processes) baselines.

    python benchmarks/burst.py                                   # SQLite only (no PG URL set)
    python benchmarks/burst.py --pg postgresql+psycopg://postgres@127.0.0.1/tuangou_bench
    TUANGOU_BENCH_PG_URL=postgresql+psycopg://postgres@127.0.0.1/tuangou_bench \
        python benchmarks/burst.py --messages 6000
    python benchmarks/burst.py --messages 2000 --profile --statements   # hotspots, SQL listing

The PostgreSQL database named in the URL is dropped and created anew for every run (its name
must contain "bench"). Exit status 0 when every target is met and the stored orders match the
generator in every run, else 1.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import cProfile
import math
import multiprocessing as mp
import os
import pstats
import random
import re
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from bot.adapters.replay import Replay
from bot.app import build_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.dispatcher import work_in_thread
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage
from models.db import create_schema, make_engine

# SQLite, one worker (the targets of the first burst issue)
TARGET_RATE = 1000.0  # order messages per second
TARGET_P99_MS = 20.0
TARGET_BOT_PER_100 = 10.0
# PostgreSQL with --workers processes (issue 4)
TARGET_PG_RATE = 1500.0  # messages per second (orders and chatter), all workers together
TARGET_PG_P99_MS = 50.0
TARGET_PG_RATIO = 5.0  # pipeline wall time / raw-driver wall time, same number of processes
PG_URL_ENV = "TUANGOU_BENCH_PG_URL"

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


ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """The commit, and a fingerprint of the app's sources as they are on disk (the tree may
    hold uncommitted edits; worker processes import the files anew, so a run compares it at
    its start and its end)."""
    import hashlib
    import subprocess

    digest = hashlib.sha1()
    for folder in ("bot", "handlers", "models", "templates"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "bot", "handlers", "models", "templates"],
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", []
    state = f", {len(dirty)} uncommitted app files" if dirty else ""
    return f"commit {head or '?'}{state}, sources {digest.hexdigest()[:10]}"


def room_index(room_id: str) -> int:
    return int(room_id.rsplit(":", 1)[1])


def share(setup: list[IncomingMessage], burst: list[Planned], expected: dict[tuple[str, str], int],
          workers: int, index: int
          ) -> tuple[list[IncomingMessage], list[Planned], dict[tuple[str, str], int]]:
    """The part of a generated run that worker ``index`` of ``workers`` handles: every room
    goes to exactly one worker (room r to worker r mod workers), as with one bot account per
    group, so no two workers ever see the same room."""
    if workers == 1:
        return setup, burst, expected
    mine = lambda room_id: room_index(room_id) % workers == index  # noqa: E731
    return ([m for m in setup if mine(m.room_id or "")],
            [p for p in burst if mine(p.msg.room_id or "")],
            {k: v for k, v in expected.items() if mine(k[0])})


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


# --- one pipeline run (one worker) ------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """What one worker runs: the generator's parameters, its share and the database."""

    url: str
    messages: int
    rooms: int
    rate: float
    noise: float
    seed: int
    workers: int = 1
    index: int = 0
    batch: int = 1  # messages per transaction at most (group commit), see run_pipeline
    session_sql: tuple[str, ...] = ()  # run on every new connection (experiments only)
    engine_opts: tuple[tuple[str, Any], ...] = ()  # extra create_engine() keywords (PG only)


@dataclass
class SqlCounter:
    """Counts the statements the app sends (a before_cursor_execute listener) while on."""

    on: bool = False
    kind: str = ""
    statements: int = 0
    commits: int = 0
    rollbacks: int = 0
    by_statement: Counter[tuple[str, str]] = field(default_factory=Counter)

    def attach(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
            if self.on:
                self.statements += 1
                self.by_statement[(self.kind, statement)] += 1

        @event.listens_for(engine, "commit")
        def _commit(_conn: Any) -> None:
            if self.on:
                self.commits += 1

        @event.listens_for(engine, "rollback")
        def _rollback(_conn: Any) -> None:
            if self.on:
                self.rollbacks += 1


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a local process (a PostgreSQL backend), from /proc; None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU used by the PostgreSQL backends serving an engine's connections (server on this
    machine): each new connection reports its backend pid."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self._start: dict[int, float] = {}

    def attach(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            return

        @event.listens_for(engine, "connect")
        def _pid(dbapi_conn: Any, _record: Any) -> None:
            self.pids.append(dbapi_conn.info.backend_pid)
            self._start[dbapi_conn.info.backend_pid] = proc_cpu_seconds(dbapi_conn.info.backend_pid) or 0.0

    def start(self) -> None:
        for pid in self.pids:
            self._start[pid] = proc_cpu_seconds(pid) or 0.0

    def used(self) -> float | None:
        if not self.pids:
            return None
        total = 0.0
        for pid in self.pids:
            now = proc_cpu_seconds(pid)
            if now is None:
                return None
            total += now - self._start.get(pid, 0.0)
        return total


@dataclass
class PipelineResult:
    t_start: float  # time.perf_counter() (CLOCK_MONOTONIC: comparable across processes)
    t_end: float
    latencies_ms: list[float]
    orders: int
    noise: int
    bot_messages: int
    statements: int
    commits: int
    rollbacks: int
    msgs_by_kind: Counter[str]
    stmts_by_kind: Counter[str]
    by_statement: Counter[tuple[str, str]]
    handled: int
    app_cpu: float = 0.0  # process CPU seconds of the worker during the burst
    db_cpu: float | None = None  # CPU seconds of its PostgreSQL backends (local server only)

    @property
    def seconds(self) -> float:
        return self.t_end - self.t_start


def app_engine(spec: Spec) -> Engine:
    """The engine the app would make (``models.db.make_engine``), plus any experiment options."""
    if spec.engine_opts and not spec.url.startswith("sqlite"):
        engine = create_engine(spec.url, **dict(spec.engine_opts))
    else:
        engine = make_engine(spec.url)
    if spec.session_sql:
        statements = spec.session_sql

        @event.listens_for(engine, "connect")
        def _session_settings(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for sql in statements:
                cur.execute(sql)
            cur.close()
            dbapi_conn.commit()

    return engine


async def run_pipeline(spec: Spec, profiler: cProfile.Profile | None = None,
                       barrier: Any = None) -> PipelineResult:
    """Open the deals of this worker's rooms (not timed), wait for the other workers, then
    push this worker's share of the burst through ``dispatcher.dispatch``."""
    settings = Settings()
    start = datetime(2026, 11, 24, 9, 0, tzinfo=settings.tz)
    setup, burst, _ = share(*generate(spec.messages, spec.rooms, spec.rate, spec.noise, start,
                                      spec.seed), spec.workers, spec.index)
    sent: list[OutgoingMessage] = []

    async def send(message: OutgoingMessage) -> None:
        sent.append(message)

    clock = ManualClock(start)
    scheduler = VirtualScheduler()
    engine = app_engine(spec)
    counter = SqlCounter()
    counter.attach(engine)
    backends = BackendCpu()
    backends.attach(engine)
    app = build_app(settings, clock, send, scheduler, engine=engine)
    replay = Replay(app, clock, scheduler, "burst")
    try:
        for msg in setup:  # not measured: the leaders open their deals
            if not await app.dispatcher.dispatch(msg):
                raise SystemExit(f"setup message {msg.id} was not handled")
        setup_sent = len(sent)
        if setup_sent != len(setup):
            raise SystemExit(f"expected {len(setup)} deal cards, the bot sent {setup_sent}")

        latencies: list[float] = []
        msgs_by_kind: Counter[str] = Counter()
        stmts_by_kind: Counter[str] = Counter()
        handled = 0
        dispatch_batch = app.dispatcher.dispatch_batch
        threaded = work_in_thread(app.engine)
        perf = time.perf_counter
        if barrier is not None:
            barrier.wait(timeout=300)  # all workers start together
        counter.on = True
        if profiler is not None:
            profiler.enable()
        backends.start()
        cpu0 = time.process_time()
        t0 = perf()
        i = 0
        while i < len(burst):
            n0 = counter.statements
            t = perf()
            # Exactly what the replay does between messages: move the clock, flush due acks
            # (and run due jobs), then hand the message(s) to the dispatcher. A batch (as the
            # live runtime takes what queued up meanwhile) never spans a moment when a flush
            # or a job is due, so every message sees the same state as one by one.
            await replay.advance_to(burst[i].msg.at)
            due = [at for at in (scheduler.next_due(), app.outbox.next_due()) if at is not None]
            j = i + 1
            while j < len(burst) and j - i < spec.batch and not any(
                    burst[j].msg.at >= at for at in due):
                j += 1
            group = burst[i:j]
            counter.kind = group[0].kind if len(group) == 1 else "batch"
            # As the live runtime's Inbox does it (--profile stays on the main thread, where
            # cProfile looks).
            handled += sum(await dispatch_batch([planned.msg for planned in group],
                                                in_thread=threaded and profiler is None))
            latencies.extend([(perf() - t) * 1000] * len(group))  # each waited for the whole batch
            for planned in group:  # a batch's statements are shared out evenly
                msgs_by_kind[planned.kind] += 1
                stmts_by_kind[planned.kind] += (counter.statements - n0) / len(group)
            i = j
        counter.kind = "final flush"
        t = perf()
        await replay.advance_to(clock.now() + timedelta(seconds=settings.ack_window_seconds + 1))
        await app.outbox.flush_all()
        t_end = perf()
        app_cpu = time.process_time() - cpu0
        db_cpu = backends.used()
        latencies.append((t_end - t) * 1000)  # the final flush, counted as one more step
        if profiler is not None:
            profiler.disable()
        counter.on = False
    finally:
        app.engine.dispose()
    n_noise = sum(1 for p in burst if p.kind == "noise")
    return PipelineResult(t0, t_end, latencies, len(burst) - n_noise, n_noise,
                          len(sent) - setup_sent, counter.statements, counter.commits, counter.rollbacks,
                          msgs_by_kind, stmts_by_kind, counter.by_statement, handled,
                          app_cpu, db_cpu)


def _pipeline_process(spec: Spec, barrier: Any, queue: Any) -> None:
    try:
        queue.put((spec.index, asyncio.run(run_pipeline(spec, barrier=barrier))))
    except BaseException:  # reported by the parent
        barrier.abort()
        queue.put((spec.index, traceback.format_exc()))


def run_workers(spec: Spec, workers: int) -> list[PipelineResult]:
    """``workers`` processes, each with its own app and engine on its share of the rooms,
    released together by a barrier once every one has opened its deals."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_pipeline_process, name=f"burst-worker-{i}",
                         args=(replace(spec, workers=workers, index=i), barrier, queue))
             for i in range(workers)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    try:
        for _ in procs:
            index, res = queue.get(timeout=900)
            results[index] = res
    finally:
        for p in procs:
            p.join(timeout=60)
    failed = [r for r in results.values() if isinstance(r, str)]
    if failed:
        raise SystemExit("a worker failed:\n" + failed[0])
    return [results[i] for i in range(workers)]


@dataclass
class Check:
    stored_qty: int
    expected_qty: int
    mismatched_members: int
    processed_rows: int

    def ok(self, messages: int, rooms: int) -> bool:
        return (self.mismatched_members == 0 and self.stored_qty == self.expected_qty
                and self.processed_rows == messages + rooms)


def verify(url: str, expected: dict[tuple[str, str], int]) -> Check:
    """What was stored, read back with plain SQL on a fresh connection, against the generator:
    a fast run cannot be one that dropped work."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as con:
            rows = con.execute(text(
                """SELECT r.platform_id, m.platform_id, ol.qty
                     FROM orderline ol JOIN "order" o ON o.id = ol.order_id
                     JOIN deal d ON d.id = o.deal_id JOIN room r ON r.id = d.room_id
                     JOIN member m ON m.id = o.member_id
                    WHERE o.status = 'active'""")).all()
            processed = con.execute(text("SELECT COUNT(*) FROM processedmessage")).scalar_one()
    finally:
        engine.dispose()
    stored: Counter[tuple[str, str]] = Counter()
    for room_id, member_id, qty in rows:
        stored[(room_id, member_id)] += qty / 1000  # stored as integer thousandths
    keys = set(stored) | set(expected)
    mismatched = sum(1 for k in keys if stored.get(k, 0) != expected.get(k, 0))
    return Check(round(sum(stored.values())), sum(expected.values()), mismatched, int(processed))


# --- PostgreSQL database ----------------------------------------------------------------------

def fresh_pg_database(url: str) -> None:
    """Drop and create the benchmark database, then migrate it (``models.db.create_schema``)."""
    u = make_url(url)
    name = u.database or ""
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    try:
        with admin.connect() as con:
            con.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            con.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    engine = make_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()


def libpq_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- raw-driver baselines ---------------------------------------------------------------------

def baseline_rows(n_rows: int, seed: int) -> list[tuple[str, ...]]:
    rng = random.Random(seed)
    return [(f"base:{i}", f"room:{rng.randrange(50)}", f"member:{rng.randrange(8000)}",
             rng.choice(["跟一单", "+1", "我要2箱", "来三份", "x2", "改成3箱"]), str(rng.randint(1, 5)),
             f"2026-11-24T09:{i // 6000 % 60:02d}:00+08:00") for i in range(n_rows)]


BASELINE_TABLE = """CREATE TABLE raw_message (id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
                    member_id TEXT NOT NULL, body TEXT NOT NULL, qty TEXT NOT NULL,
                    received_at TEXT NOT NULL)"""


@dataclass
class RawResult:
    seconds: float  # common start to last finish
    app_cpu: float  # CPU seconds of the inserting process(es)
    db_cpu: float | None  # CPU seconds of their PostgreSQL backends (local server only)


def raw_sqlite(rows: list[tuple[str, ...]], workdir: Path) -> RawResult:
    """Raw sqlite3: the app's pragmas, one INSERT and one COMMIT per row."""
    con = sqlite3.connect(workdir / "baseline.db")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(BASELINE_TABLE)
    con.commit()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for row in rows:
        con.execute("INSERT INTO raw_message VALUES (?, ?, ?, ?, ?, ?)", row)
        con.commit()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    count = con.execute("SELECT COUNT(*) FROM raw_message").fetchone()[0]
    con.close()
    if count != len(rows):
        raise SystemExit(f"sqlite3 baseline stored {count} rows, expected {len(rows)}")
    return RawResult(elapsed, cpu, None)


def _raw_pg_insert(conninfo: str, rows: list[tuple[str, ...]], session_sql: tuple[str, ...],
                   barrier: Any = None) -> tuple[float, float, float, float | None]:
    """psycopg alone, used as SQLAlchemy uses it (a transaction opened by the first statement,
    closed by COMMIT): one INSERT and one COMMIT per row.
    Returns (start, end) on the perf_counter clock, process CPU, backend CPU."""
    import psycopg

    with psycopg.connect(conninfo) as con:
        for sql in session_sql:
            con.execute(sql)
        con.commit()
        pid = con.info.backend_pid
        if barrier is not None:
            barrier.wait(timeout=300)
        db0 = proc_cpu_seconds(pid)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for row in rows:
            con.execute("INSERT INTO raw_message VALUES (%s, %s, %s, %s, %s, %s)", row)
            con.commit()
        t1 = time.perf_counter()
        cpu = time.process_time() - cpu0
        db1 = proc_cpu_seconds(pid)
        return t0, t1, cpu, (db1 - db0) if db0 is not None and db1 is not None else None


def _raw_pg_process(conninfo: str, rows: list[tuple[str, ...]], session_sql: tuple[str, ...],
                    barrier: Any, queue: Any) -> None:
    try:
        queue.put(_raw_pg_insert(conninfo, rows, session_sql, barrier))
    except BaseException:  # reported by the parent
        barrier.abort()
        queue.put(traceback.format_exc())


def raw_pg(url: str, rows: list[tuple[str, ...]], procs: int,
           session_sql: tuple[str, ...]) -> RawResult:
    """Raw psycopg baseline with ``procs`` processes, each inserting its share of the rows,
    released together; wall time from the common start to the last finish."""
    import psycopg

    conninfo = libpq_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS raw_message")
        con.execute(BASELINE_TABLE)
    if procs == 1:
        spans = [_raw_pg_insert(conninfo, rows, session_sql)]
    else:
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(procs)
        queue = ctx.Queue()
        ps = [ctx.Process(target=_raw_pg_process,
                          args=(conninfo, rows[i::procs], session_sql, barrier, queue))
              for i in range(procs)]
        for p in ps:
            p.start()
        got = [queue.get(timeout=600) for _ in ps]
        for p in ps:
            p.join(timeout=60)
        bad = [g for g in got if isinstance(g, str)]
        if bad:
            raise SystemExit("a raw psycopg process failed:\n" + bad[0])
        spans = got
    with psycopg.connect(conninfo) as con:
        count = con.execute("SELECT COUNT(*) FROM raw_message").fetchone()[0]  # type: ignore[index]
    if count != len(rows):
        raise SystemExit(f"psycopg baseline stored {count} rows, expected {len(rows)}")
    dbs = [sp[3] for sp in spans]
    return RawResult(max(sp[1] for sp in spans) - min(sp[0] for sp in spans),
                     sum(sp[2] for sp in spans), None if None in dbs else sum(dbs))  # type: ignore[arg-type]


# --- report -----------------------------------------------------------------------------------

@dataclass
class Row:
    """One configuration's aggregated result."""

    name: str
    workers: int
    parts: list[PipelineResult]
    check: Check
    rooms: int

    @property
    def messages(self) -> int:
        return sum(p.orders + p.noise for p in self.parts)

    @property
    def orders(self) -> int:
        return sum(p.orders for p in self.parts)

    @property
    def seconds(self) -> float:  # common start to last finish
        return max(p.t_end for p in self.parts) - min(p.t_start for p in self.parts)

    @property
    def latencies(self) -> list[float]:
        return sorted(x for p in self.parts for x in p.latencies_ms)

    @property
    def statements(self) -> int:
        return sum(p.statements for p in self.parts)

    @property
    def bot_messages(self) -> int:
        return sum(p.bot_messages for p in self.parts)

    @property
    def app_cpu(self) -> float:
        return sum(p.app_cpu for p in self.parts)

    @property
    def db_cpu(self) -> float | None:
        dbs = [p.db_cpu for p in self.parts]
        return None if None in dbs else sum(dbs)  # type: ignore[arg-type]

    @property
    def correct(self) -> bool:
        handled = sum(p.handled for p in self.parts)
        return handled == self.messages and self.check.ok(self.messages, self.rooms)


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def merged(parts: list[PipelineResult]) -> PipelineResult:
    """The workers' counts added up (times and latencies are not meaningful here)."""
    out = PipelineResult(0.0, 0.0, [], 0, 0, 0, 0, 0, 0, Counter(), Counter(), Counter(), 0)
    for p in parts:
        out.orders += p.orders
        out.noise += p.noise
        out.bot_messages += p.bot_messages
        out.statements += p.statements
        out.commits += p.commits
        out.rollbacks += p.rollbacks
        out.msgs_by_kind.update(p.msgs_by_kind)
        out.stmts_by_kind.update(p.stmts_by_kind)
        out.by_statement.update(p.by_statement)
        out.handled += p.handled
    return out


_IN_LIST = re.compile(r" IN \((?:%\(\w+\)s(?:::\w+)?(?:, )?)+\)")
_CAST = re.compile(r"::(?:VARCHAR|INTEGER|BIGINT|BOOLEAN|TEXT|TIMESTAMP WITH(?:OUT)? TIME ZONE)")


def short_sql(statement: str) -> str:
    """One line, bind casts dropped, IN lists folded (they differ only by length)."""
    text = _IN_LIST.sub(" IN (…)", " ".join(statement.split()))
    return _CAST.sub("", text)[:150]


def print_statements(res: PipelineResult, label: str, detail: bool) -> None:
    """SQL statements per dispatched message, by kind of message (and, with detail, which)."""
    kinds = [k for k in ("first", "add", "set", "noise") if res.msgs_by_kind[k]]
    n_all = sum(res.msgs_by_kind.values())
    by_kind = "  ".join(f"{k} {res.stmts_by_kind[k] / res.msgs_by_kind[k]:.2f}" for k in kinds)
    print(f"  {label:<26}{res.statements / n_all:6.2f} statements/message ({by_kind}); "
          f"{res.commits / n_all:.2f} commits, {res.rollbacks / n_all:.3f} rollbacks/message")
    if not detail:
        return
    for k in kinds:
        print(f"     -- {k} ({res.msgs_by_kind[k]} messages): statements per message")
        per: Counter[str] = Counter()
        for (kind, stmt), n in res.by_statement.items():
            if kind == k:
                per[short_sql(stmt)] += n
        rare = 0
        for stmt, n in per.most_common():
            if n / res.msgs_by_kind[k] >= 0.005:
                print(f"     {n / res.msgs_by_kind[k]:5.2f}  {stmt}")
            else:
                rare += n
        if rare:
            print(f"     {rare / res.msgs_by_kind[k]:5.2f}  (rarer statements)")
    tail = [(n, stmt) for (kind, stmt), n in res.by_statement.items() if kind == "final flush"]
    if tail:
        print(f"     -- final flush: {sum(n for n, _ in tail)} statements")


def print_profile(profiler: cProfile.Profile, label: str) -> None:
    print(f"\ncProfile, {label}: by cumulative time")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)
    print(f"cProfile, {label}: by own time")
    stats.sort_stats("tottime").print_stats(20)


def parse_opt(pairs: list[str]) -> tuple[tuple[str, Any], ...]:
    out = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            parsed: Any = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.append((key, parsed))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="order messages in the burst")
    ap.add_argument("--rooms", type=int, default=50, help="rooms, one open deal each")
    ap.add_argument("--rate", type=float, default=125.0,
                    help="arrival rate in virtual messages/s (default 125: 10,000 orders in ~84 s)")
    ap.add_argument("--noise", type=float, default=0.05,
                    help="chatter messages per order message, sent on top of the orders")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pg", default=os.environ.get(PG_URL_ENV),
                    help=f"PostgreSQL URL (default ${PG_URL_ENV}); its database is dropped and "
                         "recreated. Without one only SQLite runs")
    ap.add_argument("--workers", type=int, default=3, help="processes in the parallel PG run")
    ap.add_argument("--runs", default="sqlite,pg1,pgN,raw",
                    help="comma list of runs: sqlite, pg1, pgN (--workers processes), raw")
    ap.add_argument("--batch", type=int, default=Settings.batch_messages,
                    help="messages handled in one transaction at most, as the live runtime "
                         "does when they queue up (default: config's batch_messages, "
                         f"{Settings.batch_messages}); 1 = one transaction per message")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the in-process bursts (SQLite and PG 1 worker), print hotspots")
    ap.add_argument("--statements", action="store_true",
                    help="list every SQL statement per message kind (PG 1 worker, else SQLite)")
    ap.add_argument("--pg-session", action="append", default=[], metavar="SQL",
                    help="experiment: SQL run on every new PG connection, app and raw alike "
                         "(e.g. 'SET synchronous_commit=off'); not a headline figure")
    ap.add_argument("--pg-engine", action="append", default=[], metavar="KEY=VALUE",
                    help="experiment: extra create_engine() keyword for the PG app engine "
                         "(e.g. pool_reset_on_return=None, connect_args={'prepare_threshold':0})")
    args = ap.parse_args(argv)
    runs = set(args.runs.split(","))
    pg_url = args.pg if args.pg and (runs & {"pg1", "pgN"} or "raw" in runs) else None
    session_sql = tuple(args.pg_session)
    engine_opts = parse_opt(args.pg_engine)
    experiment = bool(session_sql or engine_opts)

    version = code_version()
    settings = Settings()
    _, _, expected = generate(args.messages, args.rooms, args.rate, args.noise,
                              datetime(2026, 11, 24, 9, 0, tzinfo=settings.tz), args.seed)
    base = dict(messages=args.messages, rooms=args.rooms, rate=args.rate, noise=args.noise,
                seed=args.seed, batch=args.batch)
    rows: list[Row] = []
    raw: dict[str, RawResult] = {}
    with tempfile.TemporaryDirectory(prefix="tuangou-bench-") as tmp:
        workdir = Path(tmp)
        def in_process(label: str, spec: Spec) -> None:
            prof = cProfile.Profile() if args.profile else None
            res = asyncio.run(run_pipeline(spec, prof))
            rows.append(Row(label, 1, [res], verify(spec.url, expected), args.rooms))
            if prof is not None:
                print_profile(prof, label)

        if "sqlite" in runs:
            in_process("SQLite, 1 worker", Spec(f"sqlite:///{workdir / 'burst.db'}", **base))
        if pg_url and "pg1" in runs:
            fresh_pg_database(pg_url)
            in_process("PostgreSQL, 1 worker",
                       Spec(pg_url, **base, session_sql=session_sql, engine_opts=engine_opts))
        if pg_url and "pgN" in runs:
            fresh_pg_database(pg_url)
            spec = Spec(pg_url, **base, session_sql=session_sql, engine_opts=engine_opts)
            parts = run_workers(spec, args.workers)
            rows.append(Row(f"PostgreSQL, {args.workers} workers", args.workers, parts,
                            verify(pg_url, expected), args.rooms))
        n_rows = args.messages + round(args.messages * args.noise)  # as generate() makes them
        if "raw" in runs:
            brows = baseline_rows(n_rows, args.seed)
            raw["sqlite"] = raw_sqlite(brows, workdir)
            if pg_url:
                raw["pg1"] = raw_pg(pg_url, brows, 1, session_sql)
                raw[f"pg{args.workers}"] = raw_pg(pg_url, brows, args.workers, session_sql)

    # --- the table ---
    total = n_rows
    print(f"\nburst: {args.messages} orders + {total - args.messages} chatter = {total} messages, "
          f"{args.rooms} rooms, {total / args.rate:.0f} s virtual, seed {args.seed}")
    print("SQLite: a file, WAL, synchronous=NORMAL. PostgreSQL: "
          + (make_url(pg_url).render_as_string() if pg_url else "not run (no --pg / $" + PG_URL_ENV + ")"))
    version_end = code_version()
    print(f"code: {version}" + ("" if version_end.split("sources ")[1] == version.split("sources ")[1]
                                else f"\nWARNING: the app's sources changed during the run: {version_end}"))
    if experiment:
        print(f"EXPERIMENT, not a headline figure: session SQL {list(session_sql)}, "
              f"engine options {dict(engine_opts)}")
    def cpu(seconds: float | None, n: int) -> str:
        return f"{seconds / n * 1000:>8.2f}" if seconds is not None else f"{'-':>8}"

    head = (f"{'run':<26}{'msgs':>7}{'wall s':>8}{'msg/s':>8}{'ord/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'max ms':>8}{'SQL/msg':>8}{'bot/100':>8}{'cpu app':>8}{'cpu db':>8}  stored=generated")
    print(head)
    print("-" * len(head))
    for r in rows:
        lat = r.latencies
        print(f"{r.name:<26}{r.messages:>7}{r.seconds:>8.2f}{r.messages / r.seconds:>8,.0f}"
              f"{r.orders / r.seconds:>8,.0f}{percentile(lat, 50):>8.2f}{percentile(lat, 99):>8.2f}"
              f"{lat[-1]:>8.2f}{r.statements / r.messages:>8.2f}"
              f"{r.bot_messages / r.orders * 100:>8.2f}{cpu(r.app_cpu, r.messages)}"
              f"{cpu(r.db_cpu, r.messages)}  "
              f"{r.check.stored_qty}/{r.check.expected_qty} {mark(r.correct)}")
        if r.workers > 1:
            for i, p in enumerate(r.parts):
                n = p.orders + p.noise
                pl = sorted(p.latencies_ms)
                print(f"  {'worker ' + str(i):<24}{n:>7}{p.seconds:>8.2f}{n / p.seconds:>8,.0f}"
                      f"{p.orders / p.seconds:>8,.0f}{percentile(pl, 50):>8.2f}"
                      f"{percentile(pl, 99):>8.2f}{pl[-1]:>8.2f}{p.statements / n:>8.2f}"
                      f"{p.bot_messages / max(p.orders, 1) * 100:>8.2f}{cpu(p.app_cpu, n)}"
                      f"{cpu(p.db_cpu, n)}")
    raw_names = {"sqlite": "raw sqlite3, 1 process", "pg1": "raw psycopg, 1 process",
                 f"pg{args.workers}": f"raw psycopg, {args.workers} processes"}
    for key, rr in raw.items():
        print(f"{raw_names[key]:<26}{n_rows:>7}{rr.seconds:>8.2f}{n_rows / rr.seconds:>8,.0f}"
              f"{'1 INSERT + 1 COMMIT per row':>48}{cpu(rr.app_cpu, n_rows)}"
              f"{cpu(rr.db_cpu, n_rows)}")
    print("(msg/s: all messages over the wall time from the common start to the last finish; "
          "cpu app / cpu db: CPU ms per message\n of the worker processes / of their PostgreSQL "
          "backends, all processes added up; this machine has "
          f"{os.cpu_count()} cores)")

    # --- ratios and targets ---
    by_name = {r.name: r for r in rows}
    pairs = [("SQLite, 1 worker", "sqlite"), ("PostgreSQL, 1 worker", "pg1"),
             (f"PostgreSQL, {args.workers} workers", f"pg{args.workers}")]
    ratios: dict[str, float] = {}
    if raw:
        print("\npipeline wall time / raw-driver wall time (same rows, same number of processes):")
        for name, key in pairs:
            if name in by_name and key in raw:
                ratios[key] = by_name[name].seconds / raw[key].seconds
                print(f"  {name:<26}{ratios[key]:>8.2f}x   ({raw_names[key]})")
    print("\ntargets:")
    ok = True

    def target(label: str, value: str, good: bool) -> None:
        nonlocal ok
        ok = ok and good
        print(f"  {label:<52}{value:>14}  {mark(good)}")

    if "SQLite, 1 worker" in by_name:
        r = by_name["SQLite, 1 worker"]
        target(f"SQLite 1 worker: order messages/s >= {TARGET_RATE:,.0f}",
               f"{r.orders / r.seconds:,.0f}", r.orders / r.seconds >= TARGET_RATE)
        p99 = percentile(r.latencies, 99)
        target(f"SQLite 1 worker: p99 < {TARGET_P99_MS:.0f} ms", f"{p99:.2f} ms", p99 < TARGET_P99_MS)
        per_100 = r.bot_messages / r.orders * 100
        target(f"SQLite 1 worker: bot messages / 100 orders <= {TARGET_BOT_PER_100:.0f}",
               f"{per_100:.2f}", per_100 <= TARGET_BOT_PER_100)
    name = f"PostgreSQL, {args.workers} workers"
    if name in by_name:
        r = by_name[name]
        label = f"PG {args.workers} workers"
        target(f"{label}: messages/s (all workers) >= {TARGET_PG_RATE:,.0f}",
               f"{r.messages / r.seconds:,.0f}", r.messages / r.seconds >= TARGET_PG_RATE)
        p99 = percentile(r.latencies, 99)
        target(f"{label}: p99 < {TARGET_PG_P99_MS:.0f} ms", f"{p99:.2f} ms", p99 < TARGET_PG_P99_MS)
        key = f"pg{args.workers}"
        if key in ratios:
            target(f"{label}: pipeline / raw psycopg <= {TARGET_PG_RATIO:.0f}x",
                   f"{ratios[key]:.2f}x", ratios[key] <= TARGET_PG_RATIO)
    for r in rows:
        target(f"{r.name}: stored quantities = generated",
               f"{r.check.mismatched_members} differ", r.correct)
    if experiment:
        print("  (experiment settings: these figures do not count for the targets)")
        ok = False
    print("RESULT:", mark(ok))
    if rows:
        print("\nSQL statements per burst message (a before_cursor_execute listener; on PostgreSQL "
              "each transaction adds a BEGIN and a COMMIT round trip):")
        for r in rows:
            print_statements(merged(r.parts), r.name, args.statements and r.name.startswith("Postgre"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
