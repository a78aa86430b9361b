"""How Mailchimp's answers become the engine's errors: the one place that reads a failed response.

It exists apart from the client so the mapping can be read and tested on its own, while ``client.py``
stays about endpoints and paging. Mailchimp answers failures with an RFC 9457 problem document
(``application/problem+json``: ``title``, ``detail`` and, on validation failures, ``errors``).

Error mapping (``raise_for``):

    2xx .................................. no error
    401 .................................. PermanentError: fix the API key or its data centre (says how)
    403 .................................. PermanentError: the key's user may not do this
    408, 429, 5xx ........................ TransientError; retry_after from Retry-After when sent (Mailchimp
                                           sends none), else CONNECTIONS_WAIT for a 429 (a connection
                                           frees when a request ends) and the engine's backoff otherwise
    any other status ..................... MailchimpError(PermanentError) with ``.status`` and ``.title``;
                                           e.g. "Member In Compliance State" and "Invalid Resource" are
                                           about one record, and a caller may turn them into a rejection
    connection error, timeout ............ TransientError (a bad URL scheme or a redirect loop: Permanent)
    an unparseable 2xx body .............. TransientError (cut or garbled on the way; asking again helps)
    a 2xx body of the wrong shape ........ PermanentError (valid JSON that does not fit: the API changed)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import httpx
import msgspec

from adapters.common import call_name
from adapters.mailchimp import wire
from engine.errors import PermanentError, TransientError

# Mailchimp's 429 (more than 10 simultaneous connections) names no wait; a connection frees as soon as
# one of the others' requests ends, so a second is plenty and the engine's backoff grows it if not.
CONNECTIONS_WAIT = 1.0
MAX_WAIT = 3600.0  # no vendor hint is believed beyond an hour
_PROBLEM = msgspec.json.Decoder(wire.Problem)


class MailchimpError(PermanentError):
    """Mailchimp refused a call for good; ``title`` is the problem's title ("Member In Compliance State")."""

    def __init__(self, message: str, *, status: int, title: str, detail: str) -> None:
        super().__init__(message)
        self.status, self.title, self.detail = status, title, detail


def raise_for(response: httpx.Response, *, redact: Iterable[str] = ()) -> None:
    """Raise the engine error ``response`` stands for; return when it is a success.

    ``redact`` lists secrets (the client passes its API key) that must never reach a message.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    problem = problem_of(response.content)
    said = describe(problem) or response.content.decode("utf-8", "replace")[:300] or "(no body)"
    where = call_name(response)

    def clean(text: str) -> str:
        for secret in redact:
            text = text.replace(secret, "***") if secret else text
        return " ".join(text.split())

    if status == 401:
        raise PermanentError(clean(
            f"Mailchimp refused the API key on {where} (401: {said}). Check the key under Profile > Extras > "
            "API keys; its suffix (such as -us21) must name the account's data centre, which the base URL "
            "follows."
        ))  # fmt: skip
    if status == 403:
        raise PermanentError(clean(
            f"Mailchimp denied {where} (403: {said}); the key's user may lack the role for it, or the "
            "account is suspended."
        ))  # fmt: skip
    if status in (408, 429) or status >= 500:
        wait = _seconds(response.headers.get("Retry-After"))
        if wait is None and status == 429:
            wait = CONNECTIONS_WAIT
        raise TransientError(clean(f"Mailchimp answered {status} on {where}: {said}"), retry_after=wait)
    raise MailchimpError(
        clean(f"Mailchimp refused {where} ({status}): {said}"),
        status=status,
        title=problem.title,
        detail=clean(problem.detail),
    )


def describe(problem: wire.Problem) -> str:
    """A problem document on one line: title, detail, then each field error."""
    parts = [f"{problem.title}: {problem.detail}" if problem.title else problem.detail]
    parts += [f"{e.get('field', '')}: {e.get('message', '')}" for e in problem.errors]
    return "; ".join(p for p in parts if p)


def problem_of(body: bytes | str) -> wire.Problem:
    """The problem document in ``body`` (a batch operation's ``response`` too); empty when it is none."""
    try:
        return _PROBLEM.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return wire.Problem()


def _seconds(value: str | None) -> float | None:
    """A Retry-After in seconds; None when absent or not a number (Mailchimp sends none at all)."""
    try:
        wait = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return min(max(wait, 0.0), MAX_WAIT) if math.isfinite(wait) else None
