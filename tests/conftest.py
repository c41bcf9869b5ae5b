"""Shared fixtures: each test gets its own database."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples: a red CI must be reproducible.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat import Chat  # noqa: E402

PG_URL = os.environ.get("TUANGOU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means "not here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL of the test PostgreSQL server whose tables live in a new schema of their own,
    dropped afterwards.

    CI sets TUANGOU_REQUIRE_PG=1 (it starts PostgreSQL), so there a missing server fails the
    run; on a developer machine without one the test is skipped, saying why.
    """
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("TUANGOU_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required but not reachable at {PG_URL}: {problem}")
        pytest.skip(f"no PostgreSQL at {PG_URL} ({problem})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
async def chat(db_url: str) -> AsyncIterator[Chat]:
    """A conversation in room 测试群 where 王团长 is a leader."""
    c = Chat(db_url)
    await c.room("测试群")
    await c.leader("王团长")
    yield c
    c.close()
