"""SIGKILL in the middle of a burst, 30 times: no order lost, none doubled, every order
acknowledged with what is stored (issue 4, acceptance 3)."""

from __future__ import annotations

import asyncio
import random
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support.workers import Worker, inbound, open_deals, stop_all, wait_for

from bot.config import Settings

ROOMS = 10
MEMBERS = 50
KILLS = 30


def _messages() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each member orders N boxes, later adds one (a message applied twice would show); the
    members' messages interleave at random, each member's in the order said."""
    rng = random.Random(3)
    said: dict[str, list[dict[str, Any]]] = {}
    expected = {}
    for room in range(ROOMS):
        for k in range(MEMBERS):
            name, qty = f"r{room}m{k:02d}", 1 + (room + k) % 3
            expected[name] = qty + 1
            said[name] = [inbound(f"c-{room}-{k}-a", room, name, f"我要{qty}箱"),
                          inbound(f"c-{room}-{k}-b", room, name, "再加一箱")]
    turns = [name for name in said for _ in range(2)]
    rng.shuffle(turns)
    return [said[name].pop(0) for name in turns], expected


_ADDED = re.compile(r"新增：(.*)")
_CHANGED = re.compile(r"修改：(.*)")


def _acknowledged(sent: list[dict[str, Any]]) -> tuple[dict[str, int], int]:
    """member -> the largest quantity an ack told them (orders only grow here), and how many
    ack entries were told more than once (a message sent again after its sender died)."""
    told: dict[str, int] = {}
    entries: defaultdict[str, int] = defaultdict(int)
    for m in sent:
        for line in m["text"].splitlines():
            for pattern in (_ADDED, _CHANGED):
                hit = pattern.search(line)
                if not hit:
                    continue
                for entry in hit.group(1).split("、"):
                    name, _, amount = entry.partition(" ")
                    qty = int(re.findall(r"\d+", amount)[-1])
                    told[name] = max(told.get(name, 0), qty)
                    entries[f"{name}:{amount}"] += 1
    return told, sum(n - 1 for n in entries.values())


@pytest.mark.parametrize("db_url", ["postgresql", "sqlite"], indirect=True)
async def test_killed_30_times_mid_burst_nothing_lost_nothing_doubled(db_url: str, tmp_path: Path) -> None:
    await open_deals(db_url, {room: (f"开团 楼栋{room}鸡蛋 30元/箱", datetime.now(Settings().tz))
                              for room in range(ROOMS)})
    box, expected = _messages()
    worker = Worker("solo", tmp_path, db_url, ack_window=0.3, ack_lease=1.0)
    worker.write_inbox(box)
    go = tmp_path / "go"
    go.touch()
    rng = random.Random(17)
    kills, at_kill = 0, []
    try:
        while kills < KILLS and not worker.done:
            worker.start(go)
            await asyncio.to_thread(wait_for, lambda: worker.ready, 60, "the worker to start")
            begin = worker.cursor
            target = begin + rng.randint(1, 2 * len(box) // (3 * KILLS))
            await asyncio.to_thread(wait_for, lambda t=target: worker.cursor >= t or worker.done, 60,
                                    "messages to be handled")
            await asyncio.sleep(rng.uniform(0, 0.01))  # anywhere: mid-transaction, -flush, -send
            worker.kill()
            kills += 1
            at_kill.append(worker.cursor)
        assert kills == KILLS, f"the burst ended after {kills} kills"
        worker.start(go)
        await asyncio.to_thread(wait_for, lambda: worker.done, 120, "the rest of the burst")
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                await asyncio.to_thread(wait_for, lambda: conn.execute(sa.text(
                    "select count(*) from pendingack")).scalar_one() == 0, 30, "acks to go out")
                processed = conn.execute(sa.text("select count(*) from processedmessage")).scalar_one()
                stored = dict(conn.execute(sa.text(
                    'select m.name, sum(l.qty) from orderline l join "order" o on o.id = l.order_id'
                    " join member m on m.id = o.member_id group by m.name")).all())
        finally:
            engine.dispose()
        assert worker.stop() == 0, worker.log()[-3000:]
    finally:
        stop_all([worker])
    assert at_kill == sorted(at_kill)
    assert processed == len(box) + ROOMS  # every message once (and the 开团 commands)
    stored = {name: int(qty) // 1000 for name, qty in stored.items()}  # thousandths
    assert stored == expected  # none lost, none doubled
    told, repeated = _acknowledged(worker.sent())
    assert told == stored  # every order acknowledged, with what is stored
    print(f"\n{kills} kills at inbox positions {at_kill[:5]}…{at_kill[-3:]}; "
          f"{repeated} ack entries repeated after a kill")
