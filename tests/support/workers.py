"""Starting feed workers (``feed_worker.py``) as processes and reading what they did."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.app import build_app
from bot.clock import SystemClock
from bot.config import Settings
from bot.scheduler import VirtualScheduler
from bot.types import IncomingMessage, OutgoingMessage

WORKER = Path(__file__).resolve().parent / "feed_worker.py"


def inbound(msg_id: str, room: int, name: str, text: str, *, owner: bool = False) -> dict[str, Any]:
    """One inbox line: a message said in room ``room`` by ``name``."""
    return {"id": msg_id, "text": text, "sender_id": f"wx-{name}", "sender_name": name,
            "room_id": f"wx-room-{room:02d}", "room_name": f"楼栋群{room:02d}", "owner": owner}


async def open_deals(db_url: str, openings: dict[int, tuple[str, datetime]]) -> None:
    """Each room's leader (团长NN, the owner) says its 开团 command at the given time, through
    the real dispatcher: the deals exist before the workers start."""
    settings = replace(Settings(), database_url=db_url)
    sent: list[OutgoingMessage] = []

    async def keep(msg: OutgoingMessage) -> None:
        sent.append(msg)

    app = build_app(settings, SystemClock(settings.tz), keep, VirtualScheduler(), db_url)
    try:
        for room, (text, at) in openings.items():
            m = inbound(f"open-{room}", room, f"团长{room:02d}", text, owner=True)
            assert await app.dispatcher.dispatch(IncomingMessage(
                id=m["id"], text=m["text"], sender_id=m["sender_id"], sender_name=m["sender_name"],
                room_id=m["room_id"], room_name=m["room_name"], sender_is_owner=True, at=at))
        cards = [m for m in sent if "开团 #" in m.text]
        assert len(cards) == len(openings), [m.text for m in sent]
    finally:
        app.engine.dispose()


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.005)


@dataclass
class Worker:
    """A worker's files and process."""

    name: str
    folder: Path
    db_url: str
    ack_window: float = 1.0
    ack_lease: float = 120.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def path(self, kind: str) -> Path:
        return self.folder / f"{self.name}.{kind}"

    def write_inbox(self, messages: Sequence[dict[str, Any]]) -> None:
        self.path("inbox").write_text(
            "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), "utf-8")

    def start(self, go: Path) -> None:
        self.path("ready").unlink(missing_ok=True)
        args = [sys.executable, str(WORKER), "--db", self.db_url, "--name", self.name,
                "--go", str(go), "--ack-window", str(self.ack_window),
                "--ack-lease", str(self.ack_lease)]
        for kind in ("inbox", "cursor", "outlog", "ready", "done"):
            args += [f"--{kind}", str(self.path(kind))]
        with self.path("log").open("ab") as log:
            self.proc = subprocess.Popen(args, stderr=log)

    @property
    def ready(self) -> bool:
        return self.path("ready").exists()

    @property
    def done(self) -> bool:
        return self.path("done").exists()

    @property
    def cursor(self) -> int:
        text = self.path("cursor").read_text() if self.path("cursor").exists() else ""
        return int(text or 0)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM, and the exit code (it flushes and stops cleanly)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def sent(self) -> list[dict[str, Any]]:
        path = self.path("outlog")
        if not path.exists():
            return []
        out = []
        for line in path.read_text("utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # the line a SIGKILL cut short
                continue
        return out

    def log(self) -> str:
        path = self.path("log")
        return path.read_text("utf-8", "replace") if path.exists() else ""


def stop_all(workers: Sequence[Worker]) -> None:
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        if w.proc is not None:
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
