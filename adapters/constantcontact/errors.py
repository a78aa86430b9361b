"""How Constant Contact's answers become the engine's errors: the one place that reads a failed response.

It exists apart from the client so the mapping can be read and tested on its own while ``client.py``
stays about endpoints, paging and tokens. v3 errors are an array of ``{"error_key", "error_message"}``
(an object for a 401); the authorization server's are ``{"error", "error_description"}``.

Error mapping (``raise_for``):

    2xx .................................. no error
    401 .................................. PermanentError: the grant no longer works; run
                                           `listsync auth constant-contact` (the client refreshes the
                                           access token once before it lets a 401 through)
    403 .................................. PermanentError: the grant lacks a scope or the user a privilege
    429 "1,000 queued activities" ........ ConstantContactBusy(TransientError), retry_after = QUEUE_WAIT
    429 .................................. TransientError; the vendor sends no Retry-After, so retry_after
                                           is a second (the 4-a-second window) unless it sent one; if 429s
                                           go on, the 10,000-a-day budget is spent (it resets 00:00 UTC)
    408, 5xx ............................. TransientError, retry_after from Retry-After when sent
    any other status ..................... ConstantContactError(PermanentError) with ``.status`` and
                                           ``.key`` (the error_key); 409 is a conflict (a name taken,
                                           a contact that exists, a concurrent edit)
    connection error, timeout ............ TransientError (raised by the client)
    an unparseable 2xx body .............. TransientError; a 2xx body of the wrong shape: PermanentError

Secrets (tokens, the client secret) are replaced by ``***`` in every message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import httpx
import msgspec

from adapters.common import call_name
from engine.errors import PermanentError, TransientError

QUEUE_WAIT = 60.0  # a choice: queued activities usually finish within a minute
RATE_WAIT = 1.0  # the per-second window; the vendor says nothing of when to come back
MAX_WAIT = 3600.0
AUTH_HINT = "run `listsync auth constant-contact RULES` with this rule file to authorise listsync again"


class ConstantContactError(PermanentError):
    """Constant Contact refused a call for good; ``key`` is its error_key (None when it sent none)."""

    def __init__(self, message: str, *, status: int, key: str | None) -> None:
        super().__init__(message)
        self.status, self.key = status, key


class ConstantContactBusy(TransientError):
    """The account has 1,000 bulk activities queued; new ones are refused until some finish."""


def raise_for(response: httpx.Response, *, redact: Iterable[str] = ()) -> None:
    """Raise the engine error ``response`` stands for; return when it is a success."""
    status = response.status_code
    if 200 <= status < 300:
        return
    secrets = [s for s in redact if s]

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    where = call_name(response)
    key, said = vendor_message(response)
    said = said if len(said) <= 300 else said[:300] + "..."
    if status == 401:
        raise PermanentError(
            clean(f"Constant Contact refused the access token on {where} (401: {said}); {AUTH_HINT}.")
        )
    if status == 403:
        raise PermanentError(clean(
            f"Constant Contact denied {where} (403: {said}). The grant needs the scopes contact_data, "
            f"campaign_data and offline_access, and the user the privilege: {AUTH_HINT} with those."
        ))  # fmt: skip
    if status == 429 and "queued activities" in said:
        raise ConstantContactBusy(
            clean(f"Constant Contact is busy on {where}: {said}"), retry_after=QUEUE_WAIT
        )
    if status in (408, 429) or status >= 500:
        wait = _seconds(response.headers.get("Retry-After"))
        if status == 429:
            said += " (if this goes on, the application's 10,000 calls a day are spent until 00:00 UTC)"
            wait = RATE_WAIT if wait is None else wait
        raise TransientError(
            clean(f"Constant Contact answered {status} on {where}: {said}"), retry_after=wait
        )
    raise ConstantContactError(
        clean(f"Constant Contact refused {where} ({status}): {said}"), status=status, key=key
    )


def vendor_message(response: httpx.Response) -> tuple[str | None, str]:
    """The first error_key (or OAuth ``error``) and every message of an error body, on one line."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    items = body if isinstance(body, list) else [body]
    keys, texts = [], []
    for item in items:
        if not isinstance(item, dict):
            continue
        key = item.get("error_key") or item.get("error")
        text = item.get("error_message") or item.get("error_description")
        if isinstance(key, str):
            keys.append(key)
        if isinstance(text, str):
            texts.append(text)
    said = " ".join(texts) or response.content.decode("utf-8", "replace") or "(no body)"
    return (keys[0] if keys else None), " ".join(said.split())


def _seconds(value: str | None) -> float | None:
    try:
        wait = float(value) if value is not None else None
    except ValueError:
        return None
    return None if wait is None or not math.isfinite(wait) else min(max(wait, 0.0), MAX_WAIT)
