"""A transport that changes an emulator's state as chosen requests reach it, for the paging tests.

The ESP paging tests edit records in the middle of a paged read, as another listsync process of the
same rule set or a person in the vendor's app would: the edit lands between two page calls.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

Meddle = Callable[[httpx.Request], None]


class Meddling(httpx.AsyncBaseTransport):
    """Hands each request to ``meddle`` (which may change the emulator's state), then to ``inner``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, meddle: Meddle) -> None:
        self._inner = inner
        self._meddle = meddle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._meddle(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def once(wanted: Callable[[httpx.Request], bool], change: Callable[[], None]) -> Meddle:
    """A meddler that makes ``change`` as the first request ``wanted`` picks arrives, and never again."""
    done: list[bool] = []

    def meddle(request: httpx.Request) -> None:
        if not done and wanted(request):
            done.append(True)
            change()

    return meddle
