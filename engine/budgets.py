"""Call budgets: one token bucket per vendor account, shared by every process that uses it.

Vendors publish their limits per account (Dotdigital 2,000 calls an hour, Constant Contact 4 a
second and 10,000 a day), not per rule set or process, so buckets are keyed by the rules'
`account` and handed out by one registry per engine. aiolimiter does the pacing; this module adds
the per-account registry and counts the calls used so runs can report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from engine.contract import Capabilities
from engine.ruleset import Limits, duration_seconds


@dataclass
class Budget:
    """An account's bucket; `acquire` waits for a token. Unlimited when `limiter` is None."""

    account: str
    limiter: AsyncLimiter | None
    used: int = 0

    async def acquire(self, amount: float = 1) -> None:
        if self.limiter is not None:
            await self.limiter.acquire(amount)
        self.used += int(amount)


@dataclass
class Budgets:
    """Every account's budget in this process, created on first use."""

    enabled: bool = True
    _budgets: dict[str, Budget] = field(default_factory=dict)

    def for_account(self, account: str, limits: Limits, capabilities: Capabilities) -> Budget:
        budget = self._budgets.get(account)
        if budget is None:
            budget = Budget(account, self._limiter(limits, capabilities) if self.enabled else None)
            self._budgets[account] = budget
        return budget

    def all(self) -> dict[str, Budget]:
        return dict(self._budgets)

    @staticmethod
    def _limiter(limits: Limits, capabilities: Capabilities) -> AsyncLimiter | None:
        calls = limits.calls or capabilities.calls
        if calls is None:
            return None
        period = duration_seconds(limits.period) if limits.calls else capabilities.period_seconds
        return AsyncLimiter(*bucket(calls, period, limits.burst))


def bucket(calls: int, period: float, burst: int | None) -> tuple[float, float]:
    """aiolimiter's (max_rate, time_period) so that no window of `period` holds more than `calls`.

    A bucket of `b` tokens refilled at `r` a second can spend `b + r * period` in one period, so
    the refill is (calls - b) / period, with `b` (the burst, default a tenth of the budget) at most
    calls - 1. A budget of one call per period is a bucket of one that refills at half a call per
    period, so two calls are never a period or less apart.
    """
    if calls <= 1:
        return 1, 2 * period
    size = max(1, min(burst or max(1, calls // 10), calls - 1))
    return size, period * size / (calls - size)
