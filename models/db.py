"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

import models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

SessionFactory = Callable[[], Session]


def make_engine(url: str) -> Engine:
    """Create an engine; an in-memory SQLite URL keeps one shared connection.

    Args:
        url: A SQLAlchemy URL such as ``sqlite:///tuangou.db`` or ``postgresql+psycopg://...``.
    """
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url and url != "sqlite://":
                # WAL lets the exporter read while the bot writes; NORMAL is safe with WAL.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def create_schema(engine: Engine) -> None:
    """Create every table that does not exist yet."""
    SQLModel.metadata.create_all(engine)


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions whose objects stay readable after commit (replies are rendered after it)."""

    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    return factory
