"""Shared fixtures: each test gets its own database."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples: a red CI must be reproducible.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat import Chat  # noqa: E402


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file per test."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def chat(db_url: str) -> AsyncIterator[Chat]:
    """A conversation in room 测试群 where 王团长 is a leader."""
    c = Chat(db_url)
    await c.room("测试群")
    await c.leader("王团长")
    yield c
    c.close()
