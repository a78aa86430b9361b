"""How Dotdigital's answers become the engine's errors: the one place that reads a failed response.

It exists apart from the client so the mapping (statuses, v2's ERROR_* codes, Retry-After and
X-RateLimit-Reset waits, and keeping secrets out of messages) can be read and tested on its own, while
``client.py`` stays about endpoints and paging. ``client.py`` re-exports every public name here.

Error mapping (``raise_for``):

    2xx .................................. no error
    401, 403 ............................. PermanentError: fix the API user or the region (says how)
    408, 429, 5xx ........................ TransientError, retry_after from Retry-After / X-RateLimit-Reset
    4xx with ERROR_APIUSAGE_EXCEEDED ..... DotdigitalBusy(TransientError), retry_after = FLAT_CAP_WAIT
    4xx with ERROR_IMPORT_TOOMANYACTIVEIMPORTS  DotdigitalBusy, retry_after = ACTIVE_IMPORTS_WAIT
    any other status ..................... DotdigitalError(PermanentError) with ``.code`` (ERROR_*, or None);
                                           e.g. ERROR_IMPORT_REPORT_NOT_FOUND stays permanent: poll
                                           import_status until terminal first; RECORD_CODES are per row
    connection error, timeout ............ TransientError (a bad URL scheme or a redirect loop: Permanent)
    an unparseable 2xx body .............. TransientError (a cut or garbled answer is usually a proxy or
                                           connection hiccup, and asking again gives a whole one)
    a 2xx body of the wrong shape ........ PermanentError (valid JSON that does not fit: the API changed)
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from adapters.common import call_name
from engine.errors import PermanentError, TransientError

# The flat scheme caps an account at 2000 calls per rolling hour and does not say when calls free up.
# A quarter of the window is a choice: a steady sender has freed about a quarter of its budget by then,
# and a capped run probes only four times an hour instead of wasting calls that would extend the cap.
FLAT_CAP_WAIT = 900.0
# At most 25 imports run at once; one usually finishes within a minute (a choice, not a vendor number).
ACTIVE_IMPORTS_WAIT = 60.0
MAX_WAIT = 3600.0  # no vendor hint is believed beyond an hour
# Codes about one record, not the call: an adapter turns these into RejectedRecord for that row.
RECORD_CODES = frozenset(
    {"ERROR_CONTACT_SUPPRESSED", "ERROR_CONTACT_INVALID", "ERROR_CONTACT_NOT_FOUND"}
    | {"ERROR_DATAFIELD_INVALID_VALUE", "ERROR_CONTACT_TOOMANYDATAFIELDS"}
)
_BUSY_CODES = {
    "ERROR_APIUSAGE_EXCEEDED": FLAT_CAP_WAIT,
    "ERROR_IMPORT_TOOMANYACTIVEIMPORTS": ACTIVE_IMPORTS_WAIT,
}
_CODE = re.compile(r"\bERROR_[A-Z0-9_]+\b")
_EPOCH = 1e9  # an X-RateLimit-Reset above this is a Unix time, not seconds (a third-party reading)


class DotdigitalError(PermanentError):
    """Dotdigital refused a call for good; ``code`` is v2's ERROR_* code (None when it sent none)."""

    def __init__(self, message: str, *, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class DotdigitalBusy(TransientError):
    """Dotdigital asked us to come back later, in a 4xx with an ERROR_* code rather than a 429."""

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code


# -- the one place answers become errors -----------------------------------------------------------
def raise_for(response: httpx.Response, *, redact: Iterable[str] = ()) -> None:
    """Raise the engine error ``response`` stands for; return when it is a success.

    ``redact`` lists secrets (the client passes its password) that must never reach a message, even
    when a proxy echoes them back in a body.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    secrets = [s for s in redact if s]
    where, said = call_name(response), _vendor_message(response)
    code = _last_code(said)  # before shortening: the code ends the message
    said = said if len(said) <= 300 else said[:300] + "..."

    def clean(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    if status == 401:
        raise PermanentError(clean(
            f"Dotdigital refused the API user's credentials on {where} (401: {said}). Check the API "
            "user's email and password under Settings > Access > API users in Dotdigital; an API user "
            "has its own password, not the login's."
        ))  # fmt: skip
    if status == 403:
        raise PermanentError(clean(
            f"Dotdigital denied access on {where} (403: {said}). The account may live in another region: "
            "use the ApiEndpoint that discover_endpoint() finds; otherwise give the API user access to "
            "this feature."
        ))  # fmt: skip
    if status in (408, 429) or status >= 500:
        wait = _seconds(response.headers.get("Retry-After"))
        if wait is None and status == 429:
            wait = _seconds(response.headers.get("X-RateLimit-Reset"), epoch_allowed=True)
        raise TransientError(clean(f"Dotdigital answered {status} on {where}: {said}"), retry_after=wait)
    if code is not None and code in _BUSY_CODES:
        raise DotdigitalBusy(
            clean(f"Dotdigital asked to slow down on {where} ({status}): {said}"),
            code=code,
            retry_after=_BUSY_CODES[code],
        )
    raise DotdigitalError(clean(f"Dotdigital refused {where} ({status}): {said}"), status=status, code=code)


def _vendor_message(response: httpx.Response) -> str:
    """v2's ``{"message": ...}``, v3's description and errorCode, a ProblemDetails title/detail, or else
    the body, on one line."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict):
        parts = [body.get(k) for k in ("message", "title", "detail", "description", "errorCode")]
        text = " ".join(p for p in parts if isinstance(p, str))
    else:
        text = ""
    text = text or response.content.decode("utf-8", "replace") or "(no body)"
    return " ".join(text.split())


def _last_code(message: str) -> str | None:
    codes = _CODE.findall(message)
    return codes[-1] if codes else None


def _seconds(value: str | None, *, epoch_allowed: bool = False) -> float | None:
    """A wait in seconds from Retry-After (seconds or an HTTP date) or X-RateLimit-Reset; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        wait = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        wait = (when - datetime.now(UTC)).total_seconds()
    else:
        if epoch_allowed and wait > _EPOCH:
            wait -= time.time()
    return min(max(wait, 0.0), MAX_WAIT) if math.isfinite(wait) else None


__all__ = [
    "ACTIVE_IMPORTS_WAIT",
    "FLAT_CAP_WAIT",
    "MAX_WAIT",
    "RECORD_CODES",
    "DotdigitalBusy",
    "DotdigitalError",
    "raise_for",
]
