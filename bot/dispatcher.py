"""The dispatcher: dedupe, who is speaking and where, the first matching handler, one
transaction, then replies and acks to the outbox (only after the commit)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.outbox import Outbox
from bot.scheduler import JobScheduler
from bot.types import IncomingMessage
from handlers.common import Outcome, Router, Turn
from handlers.parsing.text import normalize
from handlers.parsing.wechat import split_quote
from models import ops
from models.db import SessionFactory
from models.tables import Deal, ProcessedMessage

log = logging.getLogger(__name__)
MAX_TEXT = 20_000  # longer messages are cut before parsing; nobody orders in a novel


class Dispatcher:
    """Routes each inbound message to the first handler whose filter matches."""

    def __init__(self, settings: Settings, sessions: SessionFactory, outbox: Outbox,
                 scheduler: JobScheduler, routers: Sequence[Router]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._outbox = outbox
        self._scheduler = scheduler
        self._routers = routers

    async def dispatch(self, msg: IncomingMessage) -> bool:
        """Handle one message; returns False when it was a duplicate (or failed)."""
        outcome = self.handle(msg)
        if outcome is None:
            return False
        await self.deliver(outcome, msg.at)
        return True

    async def deliver(self, outcome: Outcome, now: datetime) -> None:
        """Pass a committed outcome on: jobs to the scheduler, words to the outbox."""
        for ack in outcome.acks:
            self._outbox.add_ack(ack, now)
        for reply in outcome.replies:
            await self._outbox.send_reply(reply)

    def handle(self, msg: IncomingMessage) -> Outcome | None:
        """Run the handler in one transaction; None for a duplicate message id."""
        with self._sessions() as session:
            if session.get(ProcessedMessage, msg.id) is not None:
                return None
            try:
                outcome, plans = self._run(session, msg)
                session.commit()
            except IntegrityError:
                # Another worker committed the same message id first: it is handled there.
                session.rollback()
                return None
            except Exception:
                session.rollback()
                log.exception("handler failed on message %s; recorded as processed", msg.id)
                self._record_failed(msg)
                return None
        for deal_id in outcome.unschedule:
            self._scheduler.drop(deal_id)
        for deal_id, jobs in plans:
            self._scheduler.plan(deal_id, jobs)
        return outcome

    def _record_failed(self, msg: IncomingMessage) -> None:
        with self._sessions() as session:
            if session.get(ProcessedMessage, msg.id) is None:
                session.add(ProcessedMessage(id=msg.id, sender_name=msg.sender_name,
                                             received_at=msg.at))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()

    def _run(self, session, msg: IncomingMessage):  # type: ignore[no-untyped-def]
        from bot.jobs import planned_jobs

        room = ops.upsert_room(session, msg.room_id, msg.room_name or "") if msg.room_id else None
        member = ops.upsert_member(session, msg.sender_id, msg.sender_name)
        if room is not None:
            ops.note_presence(session, room, member)
        quote, body = split_quote(msg.text[:MAX_TEXT])
        text = normalize(body)
        record = ProcessedMessage(id=msg.id, room_id=room.id if room else None,
                                  member_id=member.id, sender_name=msg.sender_name, body=text,
                                  received_at=msg.at)
        session.add(record)
        is_leader = bool(room is not None and (
            msg.sender_is_owner
            or msg.sender_name in self._settings.leaders.get(room.name, ())
            or ops.has_leader_role(session, room, member)))
        now = msg.at.astimezone(self._settings.tz)
        turn = Turn(session, self._settings, msg, room, member, text, body, quote, now,
                    is_leader, record)
        outcome = Outcome()
        for router in self._routers:
            matched = False
            for _name, filter_, handler in router.routes:
                data = filter_(turn)
                if data is not None:
                    outcome = handler(turn, data)
                    matched = True
                    break
            if matched:
                break
        session.flush()
        plans = []
        for deal_id in outcome.schedule:
            deal = session.get(Deal, deal_id)
            if deal is not None:
                plans.append((deal_id, planned_jobs(deal, self._settings)))
        return outcome, plans
