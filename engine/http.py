"""The one HTTP seam every vendor adapter's client goes through.

`BudgetedTransport` wraps whatever transport carries the requests (the network, or
`httpx.ASGITransport` over an emulator in tests and the demo) and does two things no client has
to remember: every request spends one token of the vendor account's shared budget first, and every
request has a deadline. The deadline is enforced here with anyio because `ASGITransport` ignores
httpx's own timeouts; an expired one surfaces as `httpx.ReadTimeout`, which clients treat like any
other transport failure (transient).
"""

from __future__ import annotations

import anyio
import httpx

from engine.contract import CallBudget

DEFAULT_DEADLINE = 121.0  # seconds: Dotdigital's documented call timeout, generous for the others


class BudgetedTransport(httpx.AsyncBaseTransport):
    """A transport that spends a budget token per request and gives each a deadline."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, budget: CallBudget, *, deadline: float = DEFAULT_DEADLINE
    ):
        self._inner = inner
        self._budget = budget
        self._deadline = deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._budget.acquire()
        try:
            with anyio.fail_after(self._deadline):
                response = await self._inner.handle_async_request(request)
                await response.aread()
                return response
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer within {self._deadline:.0f} s", request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def budgeted_client(
    base_url: str,
    budget: CallBudget,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    deadline: float = DEFAULT_DEADLINE,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """An AsyncClient for one vendor account: its requests spend `budget` and have a deadline."""
    inner = transport if transport is not None else httpx.AsyncHTTPTransport(retries=0)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=BudgetedTransport(inner, budget, deadline=deadline),
        timeout=httpx.Timeout(deadline),
        follow_redirects=follow_redirects,
    )
