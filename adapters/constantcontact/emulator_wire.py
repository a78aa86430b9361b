"""Request parsing and response rendering shared by the Constant Contact emulator's handlers.

v3 pages with an opaque cursor: a collection answers ``_links.next.href`` (host-relative, such as
``/v3/contacts?cursor=...``) while more remain, and the next call sends only that cursor. Here the
cursor carries the offset and the first call's query, so a follow-up sees the same filters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
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
    if cursor is None:
        return params
    saved = _cursor(cursor)
    return {**saved["q"], "_offset": str(saved["o"])}


def page(
    request: Request, items: Sequence[T], *, default: int, maximum: int
) -> tuple[Sequence[T], dict[str, Any]]:
    """One page of ``items`` and the ``_links`` that lead to the next one."""
    params = query(request)
    limit = integer(params.get("limit"), default, "limit")
    if not 1 <= limit <= maximum:
        raise ApiError(400, INVALID, f"limit must be 1 to {maximum}.")
    offset = int(params.pop("_offset", "0"))
    chunk = items[offset : offset + limit]
    if offset + limit >= len(items):
        return chunk, {}
    token = base64.urlsafe_b64encode(json.dumps({"o": offset + limit, "q": params}).encode()).decode()
    return chunk, {"next": {"href": f"{request.url.path}?{urlencode({'cursor': token})}"}}


def _cursor(text: str) -> dict[str, Any]:
    try:
        saved = json.loads(base64.urlsafe_b64decode(text.encode()))
        if isinstance(saved, dict) and isinstance(saved.get("o"), int) and isinstance(saved.get("q"), dict):
            return saved
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    raise ApiError(400, INVALID, "The cursor is not valid.")


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
