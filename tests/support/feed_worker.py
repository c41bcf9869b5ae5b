"""One bot process for the multi-process tests: the real LiveRuntime (dispatcher, persistent
ack queue, pacer, APScheduler with its leader election) on a transport made of files.

- ``--inbox``: JSON lines, one inbound message each (id, text, sender_id, sender_name,
  room_id, room_name, owner). Feeding starts when the ``--go`` file exists, so several
  workers start their bursts together.
- ``--cursor``: like a message queue's consumer offset. Up to ``IN_FLIGHT`` messages are
  handed over without waiting (the runtime handles those that queue up in one transaction);
  once a message is dispatched (its transaction committed, or found to be a duplicate) and
  every one before it too, the number of inbox lines done is written here; a restarted
  worker resumes from it, so the messages between the last written offset and a crash are
  delivered again.
- ``--outlog``: JSON lines, every message the bot sends (time, worker, room/person, text),
  flushed one by one, so a SIGKILL loses at most the line being written.
- ``--ready``: created once the runtime has started; ``--done``: created when the inbox is
  exhausted. The worker then runs (deadlines, acks)
  until SIGTERM, and stops cleanly.

Run as ``python tests/support/feed_worker.py --db URL --name w1 ...``.
"""
# The files are this simulated transport's wire: tiny, local, and read/written in order on
# purpose (the cursor must be written before the next message is taken).
# ruff: noqa: ASYNC110, ASYNC240

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.adapters.base import JoinCallback, MessageCallback
from bot.config import Settings
from bot.runtime import LiveRuntime
from bot.types import IncomingMessage, OutgoingMessage

IN_FLIGHT = 16  # messages handed over and not yet done, at most


class FeedAdapter:
    """Delivers the inbox from the cursor on, records what the bot sends."""

    def __init__(self, args: argparse.Namespace, tz: Any) -> None:
        self._args = args
        self._tz = tz
        self._out = open(args.outlog, "a", encoding="utf-8")
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_message: MessageCallback, *,
                    on_joined: JoinCallback | None = None) -> None:
        self._task = asyncio.create_task(self._feed(on_message))

    async def _feed(self, on_message: MessageCallback) -> None:
        go, cursor = Path(self._args.go), Path(self._args.cursor)
        while not go.exists():
            await asyncio.sleep(0.02)
        lines = Path(self._args.inbox).read_text("utf-8").splitlines()
        done = int(cursor.read_text() or 0) if cursor.exists() else 0
        in_flight: deque[tuple[int, asyncio.Future[None]]] = deque()

        async def settle(keep: int) -> None:
            # Oldest first: the offset only moves past messages that are all done.
            while in_flight and (len(in_flight) > keep or in_flight[0][1].done()):
                n, task = in_flight.popleft()
                await task
                # Atomically, as a queue's offset commit is: a kill never leaves it half written.
                tmp = cursor.with_suffix(".tmp")
                tmp.write_text(str(n + 1))
                os.replace(tmp, cursor)

        for n in range(done, len(lines)):
            raw = json.loads(lines[n])
            in_flight.append((n, asyncio.ensure_future(on_message(IncomingMessage(
                id=raw["id"], text=raw["text"], sender_id=raw["sender_id"],
                sender_name=raw["sender_name"], at=datetime.now(self._tz),
                room_id=raw["room_id"], room_name=raw["room_name"],
                sender_is_owner=raw.get("owner", False))))))
            await settle(IN_FLIGHT - 1)
            await asyncio.sleep(0)  # let the flush loop and the scheduler run between messages
        await settle(0)
        Path(self._args.done).touch()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._out.close()

    async def send(self, message: OutgoingMessage) -> None:
        self._out.write(json.dumps({"t": time.time(), "worker": self._args.name,
                                    "room_id": message.room_id, "to_id": message.to_id,
                                    "text": message.text}, ensure_ascii=False) + "\n")
        self._out.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("db", "name", "inbox", "cursor", "outlog", "go", "ready", "done"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--ack-window", type=float, default=1.0)
    parser.add_argument("--ack-lease", type=float, default=120.0)
    args = parser.parse_args()
    # Pacing is tested on its own; here the bot may send as fast as the test reads.
    settings = replace(Settings(), database_url=args.db, ack_window_seconds=args.ack_window,
                       ack_lease_seconds=args.ack_lease, room_interval_seconds=0.0,
                       account_per_minute=1_000_000)
    runtime = LiveRuntime(settings, FeedAdapter(args, settings.tz), flush_interval=0.1,
                          leader_poll=0.5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await runtime.start()
    Path(args.ready).touch()
    await stop.wait()
    await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main())
