"""The dispatcher: dedupe, who is speaking and where, the first matching handler, one
transaction, then replies and acks to the outbox (only after the commit)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.config import Settings
from bot.jobs import planned_jobs
from bot.outbox import Outbox, chat_key
from bot.scheduler import JobScheduler, Plan
from bot.types import IncomingMessage
from handlers.common import DealCache, ItemCache, Outcome, Router, Turn
from handlers.parsing.text import normalize
from handlers.parsing.wechat import split_quote
from models import ops
from models.db import SessionFactory
from models.tables import Deal, Member, ProcessedMessage, Room

log = logging.getLogger(__name__)
MAX_TEXT = 20_000  # longer messages are cut before parsing; nobody orders in a novel
MAX_ATTEMPTS = 5  # a transaction that lost a race, or hit a transient error, is run again


class Dispatcher:
    """Routes each inbound message to the first handler whose filter matches."""

    def __init__(self, settings: Settings, sessions: SessionFactory, outbox: Outbox,
                 scheduler: JobScheduler, routers: Sequence[Router]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._outbox = outbox
        self._scheduler = scheduler
        self._routers = routers
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, Member] = {}
        self._presence: set[tuple[int | None, int | None]] = set()
        self._items = ItemCache()
        self._deals = DealCache()
        # The installation's other bot accounts (the live runtime keeps this current): their
        # posts in a shared group are the bot talking, not members ordering.
        self.bot_ids: set[str] = set()

    async def dispatch(self, msg: IncomingMessage) -> bool:
        """Handle one message; returns False when it was a duplicate (or failed)."""
        if msg.sender_id in self.bot_ids:
            return False
        self._outbox.serve(chat_key(msg.room_id, msg.sender_id))
        outcome = self.handle(msg)
        if outcome is None:
            return False
        await self.deliver(outcome, msg.at)
        return True

    async def deliver(self, outcome: Outcome, now: datetime) -> None:
        """Pass a committed outcome on: replies to the outbox (its acks are queued already)."""
        if outcome.acks:
            self._outbox.staged(now)
        for reply in outcome.replies:
            await self._outbox.send_reply(reply)

    def handle(self, msg: IncomingMessage) -> Outcome | None:
        """Run the handler in one transaction; None for a message id handled before.

        The processed-message row is inserted in the same transaction as the effects, so a
        second delivery of the same id (here or in another worker) fails on its key and
        rolls back whole. Any other conflict (two workers creating the same row, or changing
        the same order line, at once) is retried from the start: no message is lost to a race.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._sessions() as session:
                try:
                    outcome, plans = self._run(session, msg)
                    session.commit()
                    break
                except (IntegrityError, ops.Conflict, OperationalError) as exc:
                    # A lost race, or a transient database failure (a deadlock, "database is
                    # locked", a connection that died and was discarded): run it again.
                    session.rollback()
                    if isinstance(exc, OperationalError):
                        log.warning("database error on message %s (attempt %d): %s",
                                    msg.id, attempt, str(exc).splitlines()[0])
                        time.sleep(0.05 * attempt)
                    self._forget_identities()
                    if self._already_handled(msg.id):
                        return None
                    if attempt == MAX_ATTEMPTS:
                        log.error("message %s kept conflicting; not handled", msg.id)
                        return None
                except Exception:
                    session.rollback()
                    self._forget_identities()
                    log.exception("handler failed on message %s; recorded as processed", msg.id)
                    self._record_failed(msg)
                    return None
        try:
            for deal_id in outcome.unschedule:
                self._scheduler.drop(deal_id)
            for deal_id, jobs in plans:
                self._scheduler.plan(deal_id, jobs)
        except Exception:  # committed already; the leader plans every open deal on take-over
            log.exception("planning the jobs of message %s failed", msg.id)
        return outcome

    def _already_handled(self, message_id: str) -> bool:
        with self._sessions() as session:
            return session.get(ProcessedMessage, message_id) is not None

    def _forget_identities(self) -> None:
        # Rows created in a rolled-back transaction must not stay cached.
        self._rooms.clear()
        self._members.clear()
        self._presence.clear()
        self._items.clear()
        self._deals.clear()

    def _record_failed(self, msg: IncomingMessage) -> None:
        with self._sessions() as session:
            try:
                ops.record_message(session, ProcessedMessage(
                    id=msg.id, sender_name=msg.sender_name, received_at=msg.at))
                session.commit()
            except IntegrityError:
                session.rollback()

    def _identities(self, session: Session, msg: IncomingMessage) -> tuple[Room | None, Member]:
        """Room and member rows, cached by platform id (a name change refreshes them)."""
        room = None
        if msg.room_id:
            room = self._rooms.get(msg.room_id)
            if room is None or (msg.room_name and room.name != msg.room_name):
                room = ops.upsert_room(session, msg.room_id, msg.room_name or "")
                self._rooms[msg.room_id] = room
        member = self._members.get(msg.sender_id)
        present = room is None or (member is not None and (room.id, member.id) in self._presence)
        if member is None or member.name != msg.sender_name:
            member = ops.upsert_member(session, msg.sender_id, msg.sender_name,
                                       present_in=None if present else room)
            self._members[msg.sender_id] = member
        elif not present:
            assert room is not None
            ops.note_presence(session, room, member)
        if room is not None:
            self._presence.add((room.id, member.id))
        return room, member

    def _run(self, session: Session, msg: IncomingMessage) -> tuple[Outcome, list[tuple[int, Plan]]]:
        quote, body = split_quote(msg.text[:MAX_TEXT])
        text = normalize(body)
        room, member = self._identities(session, msg)
        record = ProcessedMessage(id=msg.id, sender_name=msg.sender_name, body=text,
                                  received_at=msg.at, room_id=room.id if room else None,
                                  member_id=member.id)
        now = msg.at.astimezone(self._settings.tz)
        turn = Turn(session, self._settings, msg, room, member, text, body, quote, now, record,
                    self._items, self._deals)
        outcome = self._route(turn)
        session.flush()
        # Inserted with the effects: a message id seen before (or committed meanwhile by
        # another worker) fails here and the whole transaction rolls back.
        ops.record_message(session, record, self._outbox.stage(outcome.acks, msg.at))
        plans = []
        for deal_id in outcome.schedule:
            deal = session.get(Deal, deal_id)
            if deal is not None:
                plans.append((deal_id, planned_jobs(deal, self._settings)))
        return outcome, plans

    def _route(self, turn: Turn) -> Outcome:
        for router in self._routers:
            for _name, filter_, handler in router.routes:
                data = filter_(turn)
                if data is not None:
                    if router.name == "leader":
                        self._deals.clear()  # a leader command may change any deal's fields
                    return handler(turn, data)
        return Outcome()
