"""On fake time: a Dotdigital account's calls, spent through the budget, never pass its cap.

The emulator enforces its tiered scheme (300 calls a minute, then 429) on the same fake clock, so a
single call over the budget would fail the test; the request stamps are also checked over every
sliding minute. The budget is 5 calls a second (a bucket of one, leaking 4 a second);
`engine.budgets.bucket` is what makes any budget's windows safe, and it is tested on the flat
scheme's numbers in tests/test_budgets_and_retries.py. No state store is
involved (it would make fake time jump).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from adapters.dotdigital.client import DotdigitalClient
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.budgets import Budgets
from engine.contract import Capabilities
from engine.http import budgeted_client
from engine.ruleset import Limits
from tests.support import Stamped, most_in_a_window

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]
MINUTE = 60.0


async def test_calls_never_exceed_the_budget_or_the_vendors_cap_over_several_minutes() -> None:
    loop = asyncio.get_running_loop()
    knobs = Knobs(rate_scheme="tiered", tiered_calls_per_minute=300)
    state = DotdigitalState(knobs, clock=loop.time)
    transport = Stamped(httpx.ASGITransport(app=create_app(state, knobs=knobs)))
    budget = Budgets().for_account("dotdigital", Limits(calls=5, period="1s", burst=1), Capabilities())
    async with budgeted_client("https://r1-api.dotdigital.com", budget, transport=transport) as http:
        client = DotdigitalClient(http, user=knobs.api_user, password=knobs.api_password)
        for _ in range(1500):
            await client.data_fields()  # any error, the vendor's cap included, would raise here
    stamps = transport.stamps
    assert len(stamps) == 1500 and stamps[-1] - stamps[0] >= 4 * MINUTE
    assert most_in_a_window(stamps, MINUTE) <= 300
