"""Call budgets and retries on fake time (looptime): limits hold, Retry-After is honoured."""

from __future__ import annotations

import asyncio
import io
import json

import anyio
import anyio.lowlevel
import pytest

from engine.budgets import Budget, Budgets, lane
from engine.contract import Capabilities
from engine.errors import PermanentError, TransientError
from engine.logs import LOGGER, setup_logging
from engine.retrying import with_retries
from engine.ruleset import Limits

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def test_one_account_budget_is_shared_and_never_exceeded() -> None:
    budgets = Budgets()
    limits = Limits(calls=4, period="1s", burst=4)
    first = budgets.for_account("acct", limits, Capabilities())
    second = budgets.for_account("acct", Limits(calls=4, period="1s"), Capabilities())
    assert first is second
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def caller() -> None:
        for _ in range(20):
            await first.acquire()
            stamps.append(loop.time())

    start = loop.time()
    await asyncio.gather(caller(), caller())
    assert first.used == 40
    # No one-second window ever holds more than the 4 calls the budget allows, burst included...
    for stamp in stamps:
        assert sum(1 for other in stamps if stamp <= other < stamp + 1) <= 4
    # ...so 40 calls take at least 9 seconds.
    assert loop.time() - start >= 9


async def test_another_account_has_its_own_budget() -> None:
    budgets = Budgets()
    limits = Limits(calls=1, period="1s")
    assert budgets.for_account("a", limits, Capabilities()) is not budgets.for_account(
        "b", limits, Capabilities()
    )


async def test_the_adapter_default_applies_when_the_rules_set_no_limit() -> None:
    budget = Budgets().for_account("x", Limits(), Capabilities(calls=2, period_seconds=1.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(6):
        await budget.acquire()
    assert loop.time() - start >= 2


async def test_transient_errors_are_retried_honouring_retry_after() -> None:
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(loop.time())
        if len(attempts) < 3:
            raise TransientError("rate limited", retry_after=30)
        return "done"

    stream = io.StringIO()
    handler = setup_logging("json", stream)
    try:
        assert await with_retries(flaky) == "done"
    finally:
        LOGGER.removeHandler(handler)
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 30 and attempts[2] - attempts[1] >= 30
    # Each retry is one of listsync's own JSON events, not stamina's bare line.
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"], e["attempt"], e["wait"]) for e in logged] == [
        ("call retried", "warning", 1, 30.0),
        ("call retried", "warning", 2, 30.0),
    ]
    assert logged[0]["error"] == "rate limited"


async def test_permanent_errors_are_not_retried() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("bad credentials")

    with pytest.raises(PermanentError):
        await with_retries(broken)
    assert calls == 1


async def test_retries_give_up_after_the_last_attempt() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("503")

    with pytest.raises(TransientError):
        await with_retries(down, attempts=3)
    assert calls == 3


@pytest.mark.parametrize(
    ("calls", "period", "burst"), [(2000, 3600.0, 20), (4, 1.0, None), (1, 60.0, None), (10, 1.0, 50)]
)
async def test_no_window_of_one_period_ever_holds_more_than_the_budget(
    calls: int, period: float, burst: int | None
) -> None:
    from engine.budgets import bucket

    size, time_period = bucket(calls, period, burst)
    # The bucket's worst case: all of it at once, then its refill over the rest of the period.
    assert size + (period / time_period) * size <= calls + 1e-9 or calls == 1
    if calls == 1:
        assert (size, time_period) == (1, 2 * period)


async def test_queued_calls_are_served_by_lane_then_in_arrival_order() -> None:
    budget = Budget("account", capacity=1, rate=200.0)
    served: list[str] = []

    async def call(name: str, lane_name: str) -> None:
        with lane(lane_name):
            await budget.acquire()
        served.append(name)

    await budget.acquire()  # the bucket is full: everyone below queues
    async with anyio.create_task_group() as group:
        for n in range(4):
            group.start_soon(call, f"import{n}", "membership")
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        group.start_soon(call, "activity", "activity")
        group.start_soon(call, "opt-out", "opt_out")
    # import0 was already being admitted when the opt-out came; the opt-out goes straight after it.
    assert served == ["import0", "opt-out", "import1", "import2", "import3", "activity"]
    assert budget.used == 7


async def test_a_cancelled_waiter_does_not_hold_up_the_queue() -> None:
    budget = Budget("account", capacity=1, rate=100.0)
    await budget.acquire()
    with anyio.move_on_after(0.001):
        await budget.acquire()  # gives up while queued or being admitted
    with anyio.fail_after(1):
        await budget.acquire()
        await budget.acquire()


async def test_a_restored_level_has_leaked_the_time_since_it_was_saved() -> None:
    first = Budget("account", capacity=10, rate=2.0)
    for _ in range(10):
        await first.acquire()
    level, saved_at = first.saved()
    assert level == pytest.approx(10, abs=0.1)
    again = Budget("account", capacity=10, rate=2.0)
    again.restore(level, saved_at - 3)  # saved three seconds ago: six calls leaked since
    assert again.level == pytest.approx(4, abs=0.1)
    again.restore(0.0, saved_at)  # an older, lower record never lowers the level
    assert again.level == pytest.approx(4, abs=0.1)
