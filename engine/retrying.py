"""Retrying transient vendor failures with backoff, honouring the vendor's Retry-After.

stamina does the backoff and jitter; this module only decides what is retried (`TransientError`,
nothing else) and lets a vendor's `retry_after` override the computed wait. Each retry is logged as
listsync's own ``call retried`` event: stamina's default hook would write a bare
``stamina.retry_scheduled`` line through the root logger, outside the service's JSON lines.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina
import stamina.instrumentation

from engine.errors import TransientError
from engine.logs import log_event

T = TypeVar("T")

ATTEMPTS = 6


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    # The error's text is the vendor's answer as the adapters redacted it: no secret reaches here.
    log_event(
        "call retried",
        logging.WARNING,
        attempt=details.retry_num,
        wait=round(details.wait_for, 2),
        error=str(details.caused_by),
    )


stamina.instrumentation.set_on_retry_hooks([_log_retry])


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
