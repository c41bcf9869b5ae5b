"""Scheduled jobs as plain async functions of (context, deal id).

The replay clock, the tests and APScheduler all call these same functions. Each is
idempotent: it checks the deal's state in its own transaction, so a job that runs twice,
late, or after the deal was closed by hand changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from bot.clock import Clock
from bot.config import Settings
from bot.scheduler import Plan
from bot.types import Reply
from handlers import announce
from models import ops
from models.db import SessionFactory
from models.tables import Deal, Room

log = logging.getLogger(__name__)

JOB_ATTEMPTS = 5  # a job that hit a transient database error is run again, this often at most


@dataclass(frozen=True)
class JobContext:
    """What a job needs: settings, sessions and the clock."""

    settings: Settings
    sessions: SessionFactory
    clock: Clock


def planned_jobs(deal: Deal, settings: Settings) -> Plan:
    """The jobs a deal needs, derived from its state (deadline, reminder, delivery)."""
    jobs: Plan = []
    if deal.status == "open" and deal.deadline is not None:
        jobs.append(("close", deal.deadline))
        remind_at = deal.deadline - timedelta(minutes=settings.remind_before_minutes)
        if not deal.reminded and remind_at > deal.created_at:
            jobs.append(("remind", remind_at))
    if deal.delivery_at is not None and not deal.delivery_announced and deal.status in ("open", "succeeded"):
        jobs.append(("delivery", deal.delivery_at))
    return jobs


def _room(session, deal: Deal) -> Room:  # type: ignore[no-untyped-def]
    room = session.get(Room, deal.room_id)
    assert room is not None
    return room


async def close_deal_job(ctx: JobContext, deal_id: int) -> list[Reply]:
    """Close the deal at its deadline, once; announce the result."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        deal = ops.lock_deal(session, deal_id)
        if deal is None or deal.status != "open" or deal.deadline is None or deal.deadline > now:
            return []
        status = ops.close_deal(session, deal, now)
        if status is None:
            return []
        room = _room(session, deal)
        replies = announce.close_announcement(session, deal, status, ctx.settings,
                                              room.platform_id, room.name)
        session.commit()
    return replies


async def remind_deal_job(ctx: JobContext, deal_id: int) -> list[Reply]:
    """Remind once before the deadline: time left and what is missing."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        deal = ops.lock_deal(session, deal_id)
        if deal is None or deal.status != "open" or deal.reminded or deal.deadline is None:
            return []
        if not now < deal.deadline <= now + timedelta(minutes=ctx.settings.remind_before_minutes):
            return []
        deal.reminded = True
        room = _room(session, deal)
        reply = announce.reminder(session, deal, ctx.settings, room.platform_id, room.name,
                                  now.astimezone(ctx.settings.tz))
        session.commit()
    return [reply]


async def delivery_job(ctx: JobContext, deal_id: int) -> list[Reply]:
    """On delivery day, tell the buyers of a successful deal where to pick up."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        deal = ops.lock_deal(session, deal_id)
        if (deal is None or deal.status != "succeeded" or deal.delivery_announced
                or deal.delivery_at is None or deal.delivery_at > now):
            return []
        deal.delivery_announced = True
        room = _room(session, deal)
        reply = announce.delivery(session, deal, ctx.settings, room.platform_id, room.name)
        session.commit()
    return [reply]


JOBS: dict[str, Callable[[JobContext, int], Awaitable[list[Reply]]]] = {
    "close": close_deal_job,
    "remind": remind_deal_job,
    "delivery": delivery_job,
}


async def run_job(ctx: JobContext, name: str, deal_id: int) -> list[Reply]:
    """Run a named job; again after a transient database error (a deadlock with a batch of
    orders writing the same deal, a connection that died), as the dispatcher does with a
    message: a scheduled job runs once, so one error would otherwise leave a deadline
    unannounced until the next start. Being idempotent, a job run again changes nothing
    that a first run committed."""
    for attempt in range(1, JOB_ATTEMPTS + 1):
        try:
            return await JOBS[name](ctx, deal_id)
        except OperationalError as exc:
            if attempt == JOB_ATTEMPTS:
                raise
            log.warning("database error in job %s of deal %s (attempt %d): %s",
                        name, deal_id, attempt, str(exc).splitlines()[0])
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def catch_up(ctx: JobContext) -> list[Reply]:
    """On start: run every job whose time passed while the bot was down (each at most once)."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        deals = ops.live_deals(session)
        due = [(when, name, deal.id) for deal in deals
               for name, when in planned_jobs(deal, ctx.settings) if when <= now]
    replies: list[Reply] = []
    # A reminder whose deadline also passed is pointless; the close says it all.
    closing = {deal_id for _, name, deal_id in due if name == "close"}
    for _, name, deal_id in sorted(due, key=lambda d: (d[0], d[1])):
        if name == "remind" and deal_id in closing:
            continue
        replies += await run_job(ctx, name, deal_id or 0)
    return replies
