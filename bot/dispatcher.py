"""The dispatcher: dedupe, who is speaking and where, the first matching handler, one
transaction, then replies and acks to the outbox (only after the commit)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.clock import Clock
from bot.config import Settings
from bot.jobs import planned_jobs
from bot.outbox import Outbox, chat_key
from bot.scheduler import JobScheduler, Plan
from bot.types import IncomingMessage
from handlers.common import (
    DealCache,
    ItemCache,
    Outcome,
    RoomState,
    Router,
    Speaker,
    Turn,
    read_room_states,
)
from handlers.parsing.text import normalize
from handlers.parsing.wechat import split_quote
from models import ops
from models.db import SessionFactory
from models.tables import Deal, Member, ProcessedMessage, Room

log = logging.getLogger(__name__)
MAX_TEXT = 20_000  # longer messages are cut before parsing; nobody orders in a novel
MAX_ATTEMPTS = 5  # a transaction that lost a race, or hit a transient error, is run again
# What a committed message leaves to do: its outcome, the jobs of the deals it changed, and
# when its acks were queued.
Handled = tuple[Outcome, list[tuple[int, Plan]], datetime]


def _key(msg: IncomingMessage) -> tuple[str, str]:
    # What is read ahead for a message: by id and sender, since a batch with one id twice
    # (it fails on writing its records, and runs again one by one) must not hand one
    # sender's orders to another's message meanwhile.
    return msg.id, msg.sender_id


class Dispatcher:
    """Routes each inbound message to the first handler whose filter matches."""

    def __init__(self, settings: Settings, sessions: SessionFactory, outbox: Outbox,
                 scheduler: JobScheduler, routers: Sequence[Router], clock: Clock | None = None
                 ) -> None:
        self._settings = settings
        self._clock = clock
        self._sessions = sessions
        self._outbox = outbox
        self._scheduler = scheduler
        self._routers = routers
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, Member] = {}
        self._presence: set[tuple[int | None, int | None]] = set()
        # Room states read ahead for the messages of the batch in hand, by ``_key`` (see
        # ``_read_ahead``); dropped once a leader command ran, as it may have changed them.
        self._states: dict[tuple[str, str], RoomState] = {}
        # The renames and presences of the read-ahead's speakers, put off until each one's
        # turn: (member id, new name or None, room id to note presence in or None).
        self._member_writes: dict[tuple[str, str], tuple[int, str | None, int | None]] = {}
        self._items = ItemCache()
        self._deals = DealCache()
        # The installation's other bot accounts (the live runtime keeps this current): their
        # posts in a shared group are the bot talking, not members ordering.
        self.bot_ids: set[str] = set()

    async def dispatch(self, msg: IncomingMessage) -> bool:
        """Handle one message; returns False when it was a duplicate (or failed)."""
        return (await self.dispatch_batch([msg]))[0]

    async def dispatch_batch(self, msgs: Sequence[IncomingMessage], *,
                             in_thread: bool = False) -> list[bool]:
        """Handle consecutive messages (those that queued up while the previous ones were
        handled) in one transaction; see ``_handle_batch``. One flag per message: False when
        it was a duplicate, the bot's own, or failed.

        With ``in_thread`` the database work runs in a worker thread, so the event loop goes
        on taking messages (they form the next batch) while this one waits for the server.
        Only one batch may be in hand at a time (``Inbox`` sees to that): the caches here are
        not shared between threads at once.
        """
        ours = [msg.sender_id not in self.bot_ids for msg in msgs]
        mine = [msg for msg, ok in zip(msgs, ours, strict=True) if ok]
        for msg in mine:
            self._outbox.serve(chat_key(msg.room_id, msg.sender_id))
        handled = (await asyncio.to_thread(self._handle_batch, mine) if in_thread
                   else self._handle_batch(mine))
        results = iter(handled)
        done = []
        for msg, ok in zip(msgs, ours, strict=True):
            result = next(results) if ok else None
            if result is not None:
                outcome, plans, queued_at = result
                self._plan_jobs(msg, outcome, plans)
                try:
                    await self.deliver(outcome, queued_at)
                except Exception:  # committed: the next messages' replies still go out
                    log.exception("passing on the outcome of message %s failed", msg.id)
            done.append(result is not None)
        return done

    async def deliver(self, outcome: Outcome, now: datetime) -> None:
        """Pass a committed outcome on: replies to the outbox (its acks are queued already)."""
        if outcome.acks:
            self._outbox.staged(now)
        for reply in outcome.replies:
            await self._outbox.send_reply(reply)

    def _handle(self, msg: IncomingMessage) -> Handled | None:
        """Run the handler in one transaction; None for a message id handled before.

        The processed-message row is inserted in the same transaction as the effects, so a
        second delivery of the same id (here or in another worker) fails on its key and
        rolls back whole. Any other conflict (two workers creating the same row, or changing
        the same order line, at once) is retried from the start: no message is lost to a race.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._sessions() as session:
                try:
                    self._read_ahead(session, [msg])
                    ran = self._run(session, msg)
                    ops.write_deferred(session)
                    session.commit()
                    return ran
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
                except Exception:
                    session.rollback()
                    self._forget_identities()
                    log.exception("handler failed on message %s; recorded as processed", msg.id)
                    self._record_failed(msg)
                    return None
        log.error("message %s kept conflicting; not handled", msg.id)
        return None

    def _handle_batch(self, msgs: Sequence[IncomingMessage]) -> list[Handled | None]:
        """Handle messages in order in one transaction (group commit: one BEGIN and one
        COMMIT for all, which is most of what a message costs the database). Each sees the
        effects of those before it, as it would one transaction later. If any of them fails
        (a duplicate id, a lost race, a handler error), nothing of the batch is kept and each
        message runs again on its own through ``_handle``, with its own retries: an outcome
        is returned (and acknowledged) only once its transaction committed."""
        if len(msgs) <= 1:
            return [self._handle(msg) for msg in msgs]
        ran = []
        with self._sessions() as session:
            try:
                self._read_ahead(session, msgs)
                for msg in msgs:
                    ran.append(self._run(session, msg, defer_record=True))
                ops.write_deferred(session)
                session.commit()
            except Exception as exc:
                session.rollback()
                self._forget_identities()
                log.info("a batch of %d messages failed (%s); handling them one by one",
                         len(msgs), type(exc).__name__)
                return [self._handle_alone(msg) for msg in msgs]
        return list(ran)

    def _handle_alone(self, msg: IncomingMessage) -> Handled | None:
        """``_handle`` for a message of a failed batch: an error (the database gone, say) is
        this message's alone, not the batch's, whose other messages may have committed."""
        try:
            return self._handle(msg)
        except Exception:
            log.exception("message %s could not be handled", msg.id)
            return None

    def _plan_jobs(self, msg: IncomingMessage, outcome: Outcome, plans: list[tuple[int, Plan]]) -> None:
        """After the commit: (re)plan the deadline and delivery jobs the message changed."""
        try:
            for deal_id in outcome.unschedule:
                self._scheduler.drop(deal_id)
            for deal_id, jobs in plans:
                self._scheduler.plan(deal_id, jobs)
        except Exception:  # committed already; the leader plans every open deal on take-over
            log.exception("planning the jobs of message %s failed", msg.id)

    def _already_handled(self, message_id: str) -> bool:
        with self._sessions() as session:
            return session.get(ProcessedMessage, message_id) is not None

    def _forget_identities(self) -> None:
        # Rows created in a rolled-back transaction must not stay cached.
        self._rooms.clear()
        self._members.clear()
        self._presence.clear()
        self._states.clear()
        self._member_writes.clear()
        self._items.clear()
        self._deals.clear()

    def _record_failed(self, msg: IncomingMessage) -> None:
        with self._sessions() as session:
            try:
                ops.record_message(session, ops.MessageRecord(
                    id=msg.id, sender_name=msg.sender_name, received_at=msg.at))
                session.commit()
            except IntegrityError:
                session.rollback()

    def _room(self, session: Session, msg: IncomingMessage) -> Room | None:
        """The message's room row, cached by platform id (a name change refreshes it)."""
        if not msg.room_id:
            return None
        room = self._rooms.get(msg.room_id)
        if room is None or (msg.room_name and room.name != msg.room_name):
            room = ops.upsert_room(session, msg.room_id, msg.room_name or "")
            self._rooms[msg.room_id] = room
        return room

    def _read_ahead(self, session: Session, msgs: Sequence[IncomingMessage]) -> None:
        """PostgreSQL: the room state of each message of a batch (``Turn.room_state``), with
        the speaker's member row found or made where needed, all in one statement before
        the first message runs, instead of one statement per message.

        Read ahead only where no earlier message of the batch can change it: for the first
        message of each sender (a member's own orders and question change only through
        their own messages; a later one from the same sender reads its state when it runs).
        The deals of a room change only through leader commands: ``_route`` drops what was
        read ahead once one runs. Changes that other transactions commit meanwhile are seen
        as if the message had come a moment earlier: the SQL that acts on a deal re-checks
        it, as with every read of the room state. A speaker's rename and presence in the
        room are noted only when their message has its turn (``ops.defer_member_writes``):
        a message before it that names a member must find the members as they were.
        """
        self._states.clear()
        self._member_writes.clear()
        if not ops.chained_writes(session):
            return
        senders: set[str] = set()
        ahead = []
        for msg in msgs:
            first = msg.sender_id not in senders
            senders.add(msg.sender_id)
            room = self._room(session, msg) if first else None
            if room is None:
                continue
            member = self._members.get(msg.sender_id)
            known = member if member is not None and member.name == msg.sender_name else None
            writes = known is None or (room.id, known.id) not in self._presence
            ahead.append((msg, room, known, Speaker(
                room.id or 0, msg.sender_id, msg.sender_name, known.id if known else None,
                msg.at.astimezone(self._settings.tz),
                at_once=writes and msg is msgs[0])))  # no message before it to see them
        states = read_room_states(session, [speaker for *_, speaker in ahead])
        for (msg, room, known, speaker), (member_id, name, state) in zip(
                ahead, states, strict=True):
            member = known or Member(id=member_id, platform_id=msg.sender_id, name=msg.sender_name)
            rename = None if known or name == msg.sender_name else msg.sender_name
            note_in = None if (room.id, member.id) in self._presence else room.id
            if not speaker.at_once and (rename or note_in):
                self._member_writes[_key(msg)] = (member_id, rename, note_in)
            self._members[msg.sender_id] = member
            self._presence.add((room.id, member.id))
            self._states[_key(msg)] = state

    def _identities(self, session: Session, msg: IncomingMessage
                    ) -> tuple[Room | None, Member, RoomState | None]:
        """Room and member rows, cached by platform id (a name change refreshes them); and
        the room's state if it was read ahead (``_read_ahead``)."""
        room = self._room(session, msg)
        state = self._states.pop(_key(msg), None)
        put_off = self._member_writes.pop(_key(msg), None)
        if put_off is not None:
            ops.defer_member_writes(session, *put_off)
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
        return room, member, state

    def _run(self, session: Session, msg: IncomingMessage, *, defer_record: bool = False) -> Handled:
        quote, body = split_quote(msg.text[:MAX_TEXT])
        text = normalize(body)
        now = msg.at.astimezone(self._settings.tz)
        room, member, state = self._identities(session, msg)
        record = ops.MessageRecord(id=msg.id, sender_name=msg.sender_name, body=text,
                                  received_at=msg.at, room_id=room.id if room else None,
                                  member_id=member.id)
        turn = Turn(session, self._settings, msg, room, member, text, body, quote, now, record,
                    self._items, self._deals, _state=state)
        outcome = self._route(turn)
        session.flush()
        # Inserted with the effects: a message id seen before (or committed meanwhile by
        # another worker) fails here, or in a batch when its rows are written just before
        # the commit, and the whole transaction rolls back.
        # The acks' window starts when the message is handled, not when it was said: one
        # handled late (redelivered after a crash, or run again after its batch failed) must
        # not be due at once, right after the ack another worker just sent for that chat.
        # Replay's clock stands at the message's time, so there the two are the same.
        queued_at = msg.at if self._clock is None else max(msg.at, self._clock.now())
        ops.record_message(session, record, self._outbox.stage(outcome.acks, queued_at),
                           defer=defer_record)
        plans = []
        for deal_id in outcome.schedule:
            deal = session.get(Deal, deal_id)
            if deal is not None:
                plans.append((deal_id, planned_jobs(deal, self._settings)))
        return outcome, plans, queued_at

    def _route(self, turn: Turn) -> Outcome:
        for router in self._routers:
            for _name, filter_, handler in router.routes:
                data = filter_(turn)
                if data is not None:
                    if router.name == "leader":
                        # A leader command may change any deal's fields, and open or close
                        # deals: what later messages of the batch read ahead may be stale.
                        self._deals.clear()
                        self._states.clear()
                    return handler(turn, data)
        return Outcome()


def work_in_thread(engine: Engine) -> bool:
    """Whether a batch's database work should run in a thread: for a database server, where
    it mostly waits (the thread lets the event loop take the next messages meanwhile), not
    for SQLite, which works inside this process holding the GIL (a thread only adds
    switching; and an in-memory database is one connection, which the loop uses too)."""
    return engine.dialect.name != "sqlite"


class Inbox:
    """Hands messages to the dispatcher in batches: those that arrive while a batch is in
    hand wait, and go together in the next one (group commit, at most ``max_batch``).

    ``submit`` returns once its message's transaction committed (or it was found to be a
    duplicate, or failed), as ``Dispatcher.dispatch`` does: a transport that wants batches
    submits the next message without waiting for the previous one.
    """

    def __init__(self, dispatcher: Dispatcher, *, max_batch: int, in_thread: bool) -> None:
        self._dispatcher = dispatcher
        self._max = max(1, max_batch)
        self._in_thread = in_thread
        self._waiting: list[tuple[IncomingMessage, asyncio.Future[bool]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, msg: IncomingMessage) -> bool:
        """Queue a message for the next batch; True once it was handled."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((msg, done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await done

    async def close(self) -> None:
        """Wait until the messages already submitted are handled."""
        if self._drainer is not None:
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
            try:
                flags = await self._dispatcher.dispatch_batch([msg for msg, _ in batch],
                                                              in_thread=self._in_thread)
            except Exception as exc:  # each submitter gets it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled (shutting down): no submitter waits forever
                for _, done in batch + self._waiting:
                    done.cancel()
                self._waiting = []
                raise
            else:
                for (_, done), flag in zip(batch, flags, strict=True):
                    if not done.done():
                        done.set_result(flag)
