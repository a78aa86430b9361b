"""Call budgets: one leaky bucket per vendor account, shared by every process that uses it, with lanes.

Vendors publish their limits per account (Dotdigital 2,000 calls an hour, Constant Contact 4 a
second and 10,000 a day), not per rule set or process, so buckets are keyed by the rules'
`account` and handed out by one registry per engine.

Two things a service needs that a plain limiter (aiolimiter, used here before) does not give:

- **Lanes.** When calls queue for the bucket, they are served by lane, then in arrival order:
  opt-outs first, then list membership, then field updates, then activity. The lane is a context
  variable: applying sets it per batch from the op kind (`lane_of_op`), a service run sets it for
  its reads from the process (`lane_of_process`). So an opt-out never waits behind the thousands of
  calls a bulk import or a large read has queued; it waits at most for the call being admitted.
- **A level that survives a restart.** `Budgets.levels()` gives each bucket's level with the wall
  time it was read, and `restore` puts it back, leaked by the time in between: a restarted service
  does not get a fresh burst for the current period.

The bucket holds `capacity` calls and leaks `rate` a second; `bucket()` chooses them so that no
window of the vendor's period holds more than its budget. A vendor that also caps calls per day
(Constant Contact: 4 a second and 10,000 a day) gets a second bucket over a day (`daily_calls`),
which every call of the account takes from too; it is kept in the registry as an account of its
own, `"<account> per day"`, so its level is saved, restored and reported like any other.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from engine.contract import Capabilities
from engine.ruleset import Limits, duration_seconds

DAY = 86_400.0
LANES = ("opt_out", "membership", "fields", "activity")
FIELDS_LANE = 2
_LANE: ContextVar[int] = ContextVar("budget_lane", default=FIELDS_LANE)

_OP_LANES = {
    "opt_out_esp": "opt_out",
    "opt_out_crm": "opt_out",
    "mark_undeliverable_crm": "opt_out",
    "create_list": "membership",
    "add_member": "membership",
    "remove_member": "membership",
    "record_activity": "activity",
}
_PROCESS_LANES = {
    "members": "membership",
    "imports": "membership",
    "contacts": "fields",
    "activity": "activity",
}


def lane_of_op(kind: str) -> str:
    return _OP_LANES.get(kind, "fields")


def lane_of_process(process: str | None) -> str:
    return _PROCESS_LANES.get(process or "", "fields")


@contextmanager
def lane(name: str) -> Iterator[None]:
    """Calls made inside (and in tasks started inside) queue in lane `name`."""
    token = _LANE.set(LANES.index(name))
    try:
        yield
    finally:
        _LANE.reset(token)


@dataclass
class Budget:
    """An account's bucket; `acquire` waits for room. Unlimited when `capacity` is None."""

    account: str
    capacity: float | None = None
    rate: float = 1.0  # calls leaked a second
    daily: Budget | None = None  # the account's per-day bucket, when the vendor has one
    used: int = 0
    level: float = 0.0
    _at: float | None = None  # event-loop time of the last leak
    _busy: bool = False
    _queue: list[tuple[int, int, anyio.Event]] = field(default_factory=list)
    _tickets: Iterator[int] = field(default_factory=itertools.count)
    # `AdapterContext.account_state`: kept with the budget, as it is shared by the account's runs.
    adapter_state: dict[str, Any] = field(default_factory=dict)

    async def acquire(self, amount: float = 1) -> None:
        if self.daily is not None:
            await self.daily.acquire(amount)  # the day's budget first: it is the one that runs out
        if self.capacity is not None:
            wanted = min(amount, self.capacity)
            await self._turn()
            try:
                while not self._room(wanted):  # noqa: ASYNC110 (the wait is computed, no one signals)
                    # At least a millisecond: a clock of coarse resolution (looptime's in tests)
                    # would otherwise never move for the last sliver of a leak.
                    await anyio.sleep(max((self.level + wanted - self.capacity) / self.rate, 0.001))
                self.level += wanted
            finally:
                self._pass_turn()
        self.used += int(amount)

    def saved(self) -> tuple[float, float]:
        """(level now, wall time) to persist."""
        self._leak()
        return self.level, time.time()

    def restore(self, level: float, saved_at: float) -> None:
        """Take a persisted level back, leaked by the wall time since; never lower than the current."""
        self._leak()
        leaked = max(0.0, time.time() - saved_at) * self.rate
        self.level = max(self.level, level - leaked)

    def _room(self, wanted: float) -> bool:
        self._leak()
        assert self.capacity is not None
        return self.level + wanted <= self.capacity + 1e-9

    def _leak(self) -> None:
        now = _loop_time()
        if self._at is not None:
            self.level = max(0.0, self.level - (now - self._at) * self.rate)
        self._at = now

    async def _turn(self) -> None:
        """Wait until this call is the one being admitted: by lane, then in arrival order."""
        if not self._busy and not self._queue:
            self._busy = True
            await anyio.lowlevel.checkpoint()
            return
        entry = (_LANE.get(), next(self._tickets), anyio.Event())
        heapq.heappush(self._queue, entry)
        try:
            await entry[2].wait()
        except BaseException:
            if entry[2].is_set():
                self._pass_turn()  # handed the turn while being cancelled: hand it on
            else:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
            raise

    def _pass_turn(self) -> None:
        if self._queue:
            heapq.heappop(self._queue)[2].set()
        else:
            self._busy = False


def _loop_time() -> float:
    try:
        return anyio.current_time()
    except RuntimeError:  # outside an event loop (persisting at exit)
        return time.monotonic()


@dataclass
class Budgets:
    """Every account's budget in this process, created on first use."""

    enabled: bool = True
    _budgets: dict[str, Budget] = field(default_factory=dict)

    def for_account(self, account: str, limits: Limits, capabilities: Capabilities) -> Budget:
        budget = self._budgets.get(account)
        if budget is None:
            budget = Budget(account)
            shape = _shape(limits, capabilities) if self.enabled else None
            if shape is not None:
                budget.capacity, budget.rate = shape
            daily = limits.daily_calls or capabilities.daily_calls
            if self.enabled and daily is not None:
                size, seconds = bucket(daily, DAY, None)
                budget.daily = Budget(f"{account} per day", size, size / seconds)
                self._budgets[budget.daily.account] = budget.daily
            self._budgets[account] = budget
        return budget

    def all(self) -> dict[str, Budget]:
        return dict(self._budgets)


def _shape(limits: Limits, capabilities: Capabilities) -> tuple[float, float] | None:
    """(capacity, calls leaked a second) of an account's bucket; None when it has no limit."""
    calls = limits.calls or capabilities.calls
    if calls is None:
        return None
    period = duration_seconds(limits.period) if limits.calls else capabilities.period_seconds
    size, seconds = bucket(calls, period, limits.burst)
    return size, size / seconds


def bucket(calls: int, period: float, burst: int | None) -> tuple[float, float]:
    """(capacity, seconds to leak it all) so that no window of `period` holds more than `calls`.

    A bucket of `b` calls leaking at `r` a second can admit `b + r * period` in one period, so the
    leak is (calls - b) / period, with `b` (the burst, default a tenth of the budget) at most
    calls - 1. A budget of one call per period is a bucket of one that leaks in two periods, so two
    calls are never a period or less apart.
    """
    if calls <= 1:
        return 1, 2 * period
    size = max(1, min(burst or max(1, calls // 10), calls - 1))
    return size, period * size / (calls - size)
