"""Scheduling seam: the live APScheduler (persistent job store) and the replay's virtual one.

Both only decide *when*; what runs is always a plain job function of ``bot.jobs``.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from typing import Protocol

Plan = list[tuple[str, datetime]]  # (job name, when)


class JobScheduler(Protocol):
    """Where deal jobs (close, remind, delivery) are planned."""

    def plan(self, deal_id: int, jobs: Plan) -> None:
        """Replace the deal's planned jobs with these."""

    def drop(self, deal_id: int) -> None:
        """Forget the deal's planned jobs (closed or cancelled by hand)."""


class VirtualScheduler:
    """Jobs on a virtual time line; the replay pops them in time order as its clock moves."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str, int]] = []
        self._current: dict[int, set[tuple[str, datetime]]] = {}
        self._seq = itertools.count()

    def plan(self, deal_id: int, jobs: Plan) -> None:
        self._current[deal_id] = set(jobs)
        for name, when in jobs:
            heapq.heappush(self._heap, (when, next(self._seq), name, deal_id))

    def drop(self, deal_id: int) -> None:
        self._current.pop(deal_id, None)

    def next_due(self) -> datetime | None:
        """When the next live job runs, or None."""
        while self._heap:
            when, _, name, deal_id = self._heap[0]
            if (name, when) in self._current.get(deal_id, set()):
                return when
            heapq.heappop(self._heap)
        return None

    def pop_due(self, until: datetime) -> tuple[datetime, str, int] | None:
        """The next job due by ``until`` (removed from the plan), or None."""
        when = self.next_due()
        if when is None or when > until:
            return None
        when, _, name, deal_id = heapq.heappop(self._heap)
        self._current[deal_id].discard((name, when))
        return when, name, deal_id
