"""Which of several bot processes on one database runs the scheduled jobs.

Every process plans jobs into the shared APScheduler job store, but only the leader's
scheduler runs them, so a deadline is announced by one process. (The jobs are idempotent
as well: a job run twice, by two leaders in a split second of overlap, changes nothing.)

- PostgreSQL: a session-level advisory lock held on a connection of its own. When the
  leader dies its connection closes, the lock is freed, and the next process to try takes it.
- SQLite file: an exclusive ``flock`` on a file next to the database, freed by the kernel
  when the holder dies.
- In-memory SQLite: one process by definition, always the leader.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)


def lock_id(database_url: str) -> int:
    """A signed 64-bit advisory lock id for the installation at this URL."""
    digest = hashlib.sha1(f"tuangou-scheduler:{database_url}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Try to become (and check that we still are) the scheduler leader."""

    def __init__(self, engine: Engine, database_url: str) -> None:
        self._engine = engine
        self._id = lock_id(database_url)
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None
        self.is_leader = False

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True when this process leads (now or already)."""
        if self.is_leader:
            return self._still_held()
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            self.is_leader = self._try_advisory_lock()
        elif dialect == "sqlite" and self._engine.url.database not in (None, "", ":memory:"):
            self.is_leader = self._try_flock(str(self._engine.url.database))
        else:
            self.is_leader = True
        return self.is_leader

    def _try_advisory_lock(self) -> bool:
        try:
            if self._conn is None:
                # Autocommit: the lock belongs to the session, no transaction left idle open.
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:id)"),
                                          {"id": self._id}).scalar())
        except Exception:  # a dead pooled connection (the server restarted): try afresh later
            log.warning("could not ask for the scheduler lock; trying again", exc_info=True)
            self._drop_conn()
            return False
        if not got:
            self._close_conn()
        return got

    def _try_flock(self, db_path: str) -> bool:
        handle = open(f"{db_path}.scheduler.lock", "wb")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle
        return True

    def _still_held(self) -> bool:
        """A leader whose lock connection broke is no longer the leader."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
            except Exception:  # any failure means the session (and its lock) is gone
                log.warning("lost the scheduler lock connection; no longer the leader")
                self._drop_conn()
                self.is_leader = False
        return self.is_leader

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _drop_conn(self) -> None:
        """Discard a broken connection so the pool never hands it out again."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
        self._close_conn()

    def release(self) -> None:
        """Give up leadership (on shutdown)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self._id})
            except Exception:  # the session is gone, and its lock with it
                self._drop_conn()
            finally:
                self._close_conn()
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self.is_leader = False
