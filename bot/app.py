"""Assembly: settings, clock, database, renderer, outbox, scheduler and dispatcher, built once
and handed to whoever needs them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bot.clock import Clock
from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.jobs import JobContext, run_job
from bot.outbox import Outbox, Sender
from bot.render import Renderer
from bot.scheduler import JobScheduler
from handlers import leader, orders, status
from models.db import SessionFactory, create_schema, make_engine, session_factory


@dataclass
class App:
    """The assembled bot, independent of the transport."""

    settings: Settings
    clock: Clock
    engine: Engine
    sessions: SessionFactory
    renderer: Renderer
    outbox: Outbox
    scheduler: JobScheduler
    dispatcher: Dispatcher
    jobs: JobContext

    async def run_job(self, name: str, deal_id: int) -> None:
        """Run one scheduled job and send what it says."""
        for reply in await run_job(self.jobs, name, deal_id):
            await self.outbox.send_reply(reply)


def build_app(settings: Settings, clock: Clock, send: Sender, scheduler: JobScheduler,
              database_url: str | None = None, *, engine: Engine | None = None,
              sender_confirms: bool = False) -> App:
    """Build the bot around a transport's ``send`` and a scheduler.

    Args:
        settings: The configuration.
        clock: Where "now" comes from.
        send: The transport's send function.
        scheduler: Where deal jobs are planned.
        database_url: Overrides the configured database.
        engine: An engine to share (the live runtime's job store uses the same one).
        sender_confirms: ``send`` queues, and awaits each message's receipt once sent (the
            pacer); see ``Outbox``.
    """
    engine = engine or make_engine(database_url or settings.database_url)
    create_schema(engine)
    sessions = session_factory(engine)
    renderer = Renderer()
    outbox = Outbox(renderer, settings.ack_window_seconds, send, sessions,
                    sender_confirms=sender_confirms, lease_seconds=settings.ack_lease_seconds)
    # Leader commands first (开团 must never read as an order), then status queries,
    # then everything a member may mean as an order.
    dispatcher = Dispatcher(settings, sessions, outbox, scheduler,
                            [leader.router, status.router, orders.router], clock)
    return App(settings, clock, engine, sessions, renderer, outbox, scheduler, dispatcher,
               JobContext(settings, sessions, clock))
