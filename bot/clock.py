"""The one source of time: real for live runs, movable for replay and tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Returns the current time, always timezone-aware."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in the configured zone."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz)


class ManualClock:
    """A clock that only moves when told (replay, tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError(f"the clock only moves forward ({when} < {self._now})")
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
