"""The live runtime: a transport, the real clock, APScheduler with a persistent job store.

Several processes may share one database (one per WeChat account). All of them store
jobs; one, the leader (``bot.leadership``), runs them. On becoming the leader a process
first runs every job whose time passed while no leader ran (a deadline missed during
downtime closes the deal once), then plans the jobs of every open deal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine

from bot.adapters.base import ChatAdapter
from bot.app import App, build_app
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.dispatcher import Inbox, work_in_thread
from bot.jobs import JOBS, catch_up, planned_jobs
from bot.leadership import Leadership
from bot.pacing import Pacer
from bot.scheduler import Plan
from bot.types import IncomingMessage, Reply
from models import ops
from models.db import make_engine, schema_lock

log = logging.getLogger(__name__)

# APScheduler persists a job as an importable function plus picklable arguments, so a job
# cannot carry the runtime object. Each running runtime registers here under a key derived
# from its database URL; the persisted job names the key and finds its runtime again after
# a restart. This is the only process-level registry in the code.
_RUNNING: dict[str, LiveRuntime] = {}


def runtime_key(database_url: str) -> str:
    """A stable key for the runtime that owns a database's jobs."""
    return hashlib.sha1(database_url.encode("utf-8")).hexdigest()[:12]


async def run_scheduled_job(key: str, name: str, deal_id: int) -> None:
    """What APScheduler calls: find the runtime and run the named job function."""
    runtime = _RUNNING.get(key)
    if runtime is None and len(_RUNNING) == 1:
        # Planned by a process that spelled the database URL differently: the one runtime
        # of this process owns the job all the same.
        runtime = next(iter(_RUNNING.values()))
    if runtime is None:
        log.warning("job %s for deal %s fired with no runtime running; it runs on next start",
                    name, deal_id)
        return
    await runtime.app.run_job(name, deal_id)


class ApsJobScheduler:
    """Plans deal jobs in APScheduler 3 with a SQLAlchemy job store in the bot's database."""

    def __init__(self, engine: Engine, settings: Settings, key: str) -> None:
        self._key = key
        self._engine = engine
        self._aps = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
            # A job missed while the bot was down still runs (once) when it starts again.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=settings.tz,
        )

    def start(self) -> None:
        """Start paused: jobs are stored (for the leader to run), none runs here yet."""
        with schema_lock(self._engine):  # the job store creates its table if missing
            self._aps.start(paused=True)

    def resume(self) -> None:
        """Run jobs: this process leads."""
        self._aps.resume()

    def pause(self) -> None:
        self._aps.pause()

    def wakeup(self) -> None:
        """Look at the job store again (other processes add and move jobs in it)."""
        self._aps.wakeup()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def plan(self, deal_id: int, jobs: Plan) -> None:
        wanted = {name for name, _ in jobs}
        for name, when in jobs:
            self._aps.add_job(run_scheduled_job, "date", run_date=when, args=[self._key, name, deal_id],
                              id=f"{name}:{deal_id}", replace_existing=True)
        for name in set(JOBS) - wanted:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(f"{name}:{deal_id}")

    def drop(self, deal_id: int) -> None:
        self.plan(deal_id, [])

    def job_times(self) -> dict[str, datetime]:
        """Planned jobs by id (for tests and the operator)."""
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}


class LiveRuntime:
    """Runs the bot on a live transport until stopped."""

    def __init__(self, settings: Settings, adapter: ChatAdapter, *, clock: Clock | None = None,
                 flush_interval: float = 0.5, leader_poll: float = 2.0) -> None:
        self.settings = settings
        self.adapter = adapter
        self.clock = clock or SystemClock(settings.tz)
        self.key = runtime_key(settings.database_url)
        self._flush_interval = flush_interval
        self._leader_poll = leader_poll
        self._engine = make_engine(settings.database_url)
        self.scheduler = ApsJobScheduler(self._engine, settings, self.key)
        self.leadership = Leadership(self._engine, settings.database_url)
        self.pacer = Pacer(settings, adapter.send, self._room_leaders)
        self.app: App = build_app(settings, self.clock, self.pacer.submit, self.scheduler,
                                  engine=self._engine, sender_confirms=True)
        self.inbox = Inbox(self.app.dispatcher, max_batch=settings.batch_messages,
                           in_thread=work_in_thread(self._engine))
        self._flusher: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._leading: asyncio.Task[None] | None = None
        self._took_over = False  # leads, and has caught up and resumed the scheduler
        self._registered: str | None = None  # the account registered as one of ours
        self._accepting = True

    def _room_leaders(self, room_id: str) -> list[tuple[str, str]]:
        """Where a shadow-mode room's messages go instead: its leaders, privately."""
        with self.app.sessions() as session:
            return [(m.platform_id, m.name)
                    for m in ops.room_leaders(session, room_id, self.settings.leaders)]

    async def start(self) -> None:
        """Start the scheduler paused, become its leader if no other process is (catching up on
        missed jobs first), then connect the transport."""
        self.scheduler.start()
        self._sender = asyncio.create_task(self.pacer.run())
        await self._check_leadership()
        self._flusher = asyncio.create_task(self._flush_loop())
        self._leading = asyncio.create_task(self._leadership_loop())
        await self.adapter.start(self.on_message, on_joined=self.on_joined)

    async def _check_leadership(self) -> None:
        leads = self.leadership.try_acquire()
        if leads and not self._took_over:
            try:
                await self._take_over()
            except Exception:  # keep the lock and try the take-over again at the next poll
                log.exception("taking over the scheduled jobs failed; retrying")
                return
            self._took_over = True
        elif self._took_over and not leads:
            self.scheduler.pause()
            self._took_over = False
        elif leads:
            self.scheduler.wakeup()

    async def _take_over(self) -> None:
        """Now the leader: run what was missed, plan every open deal's jobs, run the scheduler."""
        log.info("this process now runs the scheduled jobs")
        _RUNNING[self.key] = self
        for reply in await catch_up(self.app.jobs):
            await self.app.outbox.send_reply(reply)
        with self.app.sessions() as session:
            for deal in ops.live_deals(session):
                self.scheduler.plan(deal.id or 0, planned_jobs(deal, self.settings))
        self.scheduler.resume()

    async def _leadership_loop(self) -> None:
        while True:
            await asyncio.sleep(self._leader_poll)
            try:
                self._sync_bot_accounts()
                await self._check_leadership()
            except Exception:  # a database hiccup must not end the loop
                log.exception("checking the scheduler leadership failed")

    def _sync_bot_accounts(self) -> None:
        """Register the account this process is logged in as (a transport that has one says
        so in ``account_id``) and learn the other bots' accounts."""
        account = getattr(self.adapter, "account_id", None)
        with self.app.sessions() as session:
            if account and account != self._registered:
                ops.register_bot(session, account, self.settings.bot_name)
                session.commit()
                self._registered = account
            self.app.dispatcher.bot_ids = ops.bot_ids(session) - {account}

    async def on_message(self, msg: IncomingMessage) -> None:
        """Transport callback for every inbound message; returns once it is handled (none
        once stopping: the transport delivers it again, and the database dedupes it if it
        was handled after all). A transport may pass the next messages before this returns:
        those that queue up are handled together, in order (``Inbox``)."""
        if self._accepting:
            await self.inbox.submit(msg)

    async def on_joined(self, room_id: str, room_name: str) -> None:
        """Transport callback when the account is added to a room: a short how-to, sent like
        every other message (paced; in a shadow or observe room, not posted there)."""
        await self.app.outbox.send_reply(Reply("greeting", {
            "bot_name": self.settings.bot_name, "room_name": room_name},
            room_id=room_id, room_name=room_name))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.app.outbox.flush_due(self.clock.now())
            except Exception:  # a failed send must not stop later acknowledgements
                log.exception("flushing acknowledgements failed")

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop taking messages, stop the scheduler (its jobs stay stored) and give up the
        leadership, send what is pending within the pacing limits (up to ``drain_seconds``),
        then disconnect. Each step runs even if an earlier one failed."""
        self._accepting = False  # a message arriving now is left for redelivery
        try:
            await self.inbox.close()  # those taken already are handled and acknowledged
        except Exception:
            log.exception("handling the last messages failed")
        for task in (self._leading, self._flusher):
            await _cancelled(task)
        try:
            self.scheduler.shutdown()
        except Exception:
            log.exception("stopping the scheduler failed")
        self.leadership.release()
        try:
            if self._flusher is not None:  # started: flush and send what is pending
                await self.app.outbox.flush_all()
                await self.pacer.drain(drain_seconds)
        except Exception:
            log.exception("sending the last messages failed; their acks are sent after restart")
        finally:
            await _cancelled(self._sender)
            try:
                await self.adapter.stop()
            finally:
                if _RUNNING.get(self.key) is self:
                    del _RUNNING[self.key]
                self._engine.dispose()


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait for it; whatever it ended with is logged, not raised."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("a runtime task had failed")
