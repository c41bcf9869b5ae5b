"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
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


# Any fixed number: PostgreSQL advisory locks are named by a 64-bit integer per database.
_SCHEMA_LOCK = 0x7475_616E_676F_7531  # "tuangou1"


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """While held, no other bot process on this database creates or upgrades tables.

    Two accounts' processes started together on a new database both find the tables
    missing and both create them; the slower one fails on a table the other has just made.
    PostgreSQL: a session advisory lock on a connection of its own (freed if the process
    dies). SQLite file: an exclusive ``flock`` on a file next to it. In-memory: one process.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _SCHEMA_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _SCHEMA_LOCK})
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{engine.url.database}.schema.lock", "wb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # freed when the file closes
            yield
    else:
        yield


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest schema through the migrations (idempotent)."""
    with schema_lock(engine), engine.begin() as connection:
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
