"""Request parsing and response rendering shared by the Constant Contact emulator's handlers.

v3 pages with an opaque cursor: a collection answers ``_links.next.href`` (host-relative, such as
``/v3/contacts?cursor=...``) while more remain, and the next call sends only that cursor. The cursor
is a seek cursor, as Constant Contact's are: the one example the spec gives (``GET /contact_tags``)
decodes to ``limit=1&next=<the id of the next tag>``, a page named by the record it starts at, not by
a position. Here the cursor carries the first call's query, so a follow-up sees the same filters, and
the sort key of the record the next page starts at: that page starts at the first record at or past
that key, wherever the records before it went meanwhile. So a record deleted, or edited (and so moved
to the end of a list in order of ``updated_at``), while a client pages never moves another record
across a page boundary, as it would with an offset.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from adapters.constantcontact.emulator_data import parse_time
from adapters.constantcontact.emulator_state import ApiError

T = TypeVar("T")
INVALID = "contacts.api.validation.error"


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status)


async def read_json(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", ""):
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json.")
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, INVALID, "The request body is not valid JSON.") from None


def query(request: Request) -> dict[str, str]:
    """The call's query: a cursor's saved query when it sends one, else its own."""
    params = dict(request.query_params)
    cursor = params.pop("cursor", None)
    return params if cursor is None else dict(_cursor(cursor)["q"])


def page(
    request: Request,
    items: Iterable[T],
    *,
    key: Callable[[T], tuple[float | str, ...]],
    default: int,
    maximum: int,
    newest_first: bool = False,
) -> tuple[Sequence[T], dict[str, Any]]:
    """One page of ``items`` in order of ``key`` (``newest_first``: descending), and the ``_links``
    that lead to the next one; ``key`` must tell every item apart."""
    params = query(request)
    limit = integer(params.get("limit"), default, "limit")
    if not 1 <= limit <= maximum:
        raise ApiError(400, INVALID, f"limit must be 1 to {maximum}.")
    ordered = sorted(items, key=key, reverse=newest_first)
    keys = [list(key(item)) for item in ordered]  # as the cursor's JSON gives them back
    cursor = request.query_params.get("cursor")
    start = 0
    if cursor is not None:
        at = _cursor(cursor)["n"]
        start = next((i for i, k in enumerate(keys) if (k <= at if newest_first else k >= at)), len(ordered))
    end = start + limit
    if end >= len(ordered):
        return ordered[start:end], {}
    token = base64.urlsafe_b64encode(json.dumps({"n": keys[end], "q": params}).encode()).decode()
    return ordered[start:end], {"next": {"href": f"{request.url.path}?{urlencode({'cursor': token})}"}}


def _cursor(text: str) -> dict[str, Any]:
    try:
        saved = json.loads(base64.urlsafe_b64decode(text.encode()))
        if isinstance(saved, dict) and isinstance(saved.get("n"), list) and isinstance(saved.get("q"), dict):
            return saved
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise ApiError(400, INVALID, "The cursor is not valid.")


def by_time(moment: datetime, record_id: str | int) -> tuple[float, str]:
    """A sort key: a time, then an id to tell records of the same time apart."""
    return moment.timestamp(), str(record_id)


def integer(text: str | None, default: int, name: str) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, INVALID, f"{name} must be a whole number.") from None


def moment(params: dict[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ApiError(400, INVALID, f"{name} must be an ISO-8601 date-time.") from None


def csv_set(params: dict[str, str], name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in params.get(name, "").split(",") if part.strip())


def uuids(value: Any, name: str, maximum: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, INVALID, f"{name} must be an array of ids.")
    if len(value) > maximum:
        raise ApiError(400, INVALID, f"{name} may hold at most {maximum} ids.")
    return list(value)
