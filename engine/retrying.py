"""Retrying transient vendor failures with backoff, honouring the vendor's Retry-After.

stamina does the backoff and jitter; this module only decides what is retried (`TransientError`,
nothing else) and lets a vendor's `retry_after` override the computed wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina

from engine.errors import TransientError

T = TypeVar("T")

ATTEMPTS = 6


def _backoff(error: Exception) -> bool | float:
    if not isinstance(error, TransientError):
        return False
    return error.retry_after if error.retry_after is not None else True


async def with_retries(call: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Await `call()`, repeating it after transient failures; the last failure is raised."""
    async for attempt in stamina.retry_context(on=_backoff, attempts=attempts, timeout=None, wait_max=60.0):
        with attempt:
            return await call()
    raise AssertionError("unreachable: stamina raises after the last attempt")
