"""The HTTP seam: every request spends the account's budget, and has a deadline even over ASGI."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.budgets import Budgets
from engine.contract import Capabilities
from engine.http import budgeted_client
from engine.ruleset import Limits

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"path": request.url.path})


async def test_every_request_spends_the_shared_budget() -> None:
    budget = Budgets().for_account("esp", Limits(calls=2, period="1s", burst=2), Capabilities())
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with budgeted_client("https://api.example", budget, transport=httpx.MockTransport(ok)) as client:
        for _ in range(10):
            assert (await client.get("/v2/ping")).json() == {"path": "/v2/ping"}
    assert budget.used == 10
    assert loop.time() - start >= 4  # 10 calls at 2 a second, 2 of them in the first burst


async def test_a_request_without_an_answer_times_out_even_over_asgi() -> None:
    async def silent(scope: object, receive: object, send: object) -> None:
        await asyncio.sleep(3600)

    budget = Budgets(enabled=False).for_account("esp", Limits(), Capabilities())
    transport = httpx.ASGITransport(app=silent)  # type: ignore[arg-type]
    async with budgeted_client("https://api.example", budget, transport=transport, deadline=30) as client:
        with pytest.raises(httpx.ReadTimeout, match="no answer within 30 s"):
            await client.get("/v2/contacts")
