"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

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


def _alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("models") / "migrations"))
    config.attributes["connection"] = connection
    return config


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest schema through the migrations (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


def new_revision(engine: Engine, message: str) -> None:
    """Write a migration for the difference between the models and the database."""
    with engine.begin() as connection:
        command.revision(_alembic_config(connection), message=message, autogenerate=True)


def session_factory(engine: Engine) -> SessionFactory:
    """Sessions whose objects stay readable after commit (replies are rendered after it)."""

    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    return factory
