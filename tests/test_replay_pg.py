"""Every transcript we have, replayed on PostgreSQL, ends exactly as on SQLite.

On PostgreSQL several steps of an order run as one chained statement (``models.ops.chained_writes``)
where SQLite runs them one by one; the conversations of every transcript set (the shared
examples, when they are next to the repo, and our own sets) exercise both paths on the same input, and the
export and every bot message must come out the same.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import pg_schema_url
from puppet.replay import plain_replay

from bot.config import Settings

ROOT = Path(__file__).resolve().parent
SETS = [ROOT.parent.parent / "shared" / "transcripts", *sorted(ROOT.glob("transcripts*"))]
FILES = sorted(p for d in SETS if d.is_dir() for p in d.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
async def test_replay_on_postgresql_equals_sqlite(path: Path, tmp_path: Path) -> None:
    raw = await asyncio.to_thread(path.read_text, "utf-8")
    settings = Settings()
    on_sqlite = await plain_replay(raw, settings, f"sqlite:///{tmp_path / 'replay.db'}")
    with pg_schema_url() as url:
        on_pg = await plain_replay(raw, settings, url)
    assert on_pg.export == on_sqlite.export
    assert on_pg.messages == on_sqlite.messages
    assert on_sqlite.export["deals"], "the transcript opened no deal: nothing was compared"
