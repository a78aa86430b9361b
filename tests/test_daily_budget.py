"""A vendor's daily cap beside its rate (Constant Contact: 4 calls a second and 10,000 a day), on fake
time: both budgets hold at once, and the day's is kept, restored and reported as an account of its own."""

from __future__ import annotations

import asyncio

import pytest

from engine.budgets import DAY, Budgets
from engine.contract import Capabilities
from engine.ruleset import Limits

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def test_no_second_and_no_day_holds_more_calls_than_its_budget() -> None:
    budgets = Budgets()
    budget = budgets.for_account("cc", Limits(calls=4, period="1s", daily_calls=12), Capabilities())
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    for _ in range(30):
        await budget.acquire()
        stamps.append(loop.time())
    for stamp in stamps:
        assert sum(1 for other in stamps if stamp <= other < stamp + 1) <= 4
        assert sum(1 for other in stamps if stamp <= other < stamp + DAY) <= 12
    # 30 calls at 12 a day take more than two days, though the rate alone would allow them in 8 s.
    assert stamps[-1] - stamps[0] > 2 * DAY * 0.9
    assert budget.used == 30 and budget.daily is not None and budget.daily.used == 30


async def test_the_adapter_daily_cap_applies_when_the_rules_set_none() -> None:
    budgets = Budgets()
    budget = budgets.for_account("cc", Limits(), Capabilities(calls=4, daily_calls=10_000))
    assert budget.daily is not None and budget.daily.capacity is not None
    # The day's bucket is kept beside the account's, so the service saves and restores its level.
    assert budgets.all() == {"cc": budget, "cc per day": budget.daily}
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(40):
        await budget.acquire()
    assert loop.time() - start < 15  # well within the day's burst: only the 4 a second paces these


async def test_a_rules_daily_cap_wins_over_the_adapters_and_none_means_none() -> None:
    budgets = Budgets()
    ruled = budgets.for_account("a", Limits(daily_calls=100), Capabilities(calls=4, daily_calls=10_000))
    plain = budgets.for_account("b", Limits(), Capabilities(calls=4))
    assert ruled.daily is not None and ruled.daily.capacity == 10  # a tenth of 100 as the burst
    assert plain.daily is None
    off = Budgets(enabled=False).for_account("c", Limits(daily_calls=5), Capabilities())
    assert off.daily is None and off.capacity is None
