"""An in-memory Dotdigital v2 API as an ASGI app, for tests (through ``httpx.ASGITransport``) and the sandbox.

Built from the published OpenAPI document (``shared/vendor-specs/dotdigital/dotdigital-v2-api-swagger.json``)
and ``shared/reference/esp-apis.md``. This module is the HTTP skin: it checks HTTP Basic credentials, counts
calls against the account's rate-limit scheme (flat: N per hour, over it 400 ``ERROR_APIUSAGE_EXCEEDED``;
tiered: N per minute, over it 429 with ``X-RateLimit-*`` headers) and maps ``ApiError`` to v2's
``{"message": "<text> ERROR_CODE"}``. Behaviour lives in ``DotdigitalState``. In front of it all sits the
shared fault layer (``adapters.emulation``: latency, 500/503/429, timeouts, drops, cut JSON, and the
``/_emulator/`` control API), told by ``emulator_control.py`` how Dotdigital's errors and account look.

The route table and handlers live in ``emulator_routes.py`` (which also documents the campaign-activity
endpoints); request parsing and JSON rendering in ``emulator_wire.py``.

Unsubscribes from one address book (``POST /v2/address-books/{id}/contacts/unsubscribe``, ``GET
.../unsubscribed-since/{date}``, ``POST .../resubscribe[-with-no-challenge]``) follow the lists document's
shapes; what they do beyond that is a choice, written down in ``emulator_book_unsubscribes.py`` (the
real behaviour is UNSURE). The one that matters most: an import into a book of a contact unsubscribed
from it does not put the contact back; its row is a fault ``Unsubscribed`` in the fault report, counted
as ``unsubscribed`` in the import report. ``DotdigitalState.unsubscribe_from_book`` makes one happen.

``GET /v2/contacts/import/{id}/report-faults``: the v2 OpenAPI document declares its answer
``application/octet-stream`` (a binary string), while ``shared/reference/esp-apis.md`` and the vendor's
ReadMe describe UTF-8 CSV (``Reason,email,<data fields>``). The two agree once the CSV is the bytes of
the octet stream, so the emulator answers the documented media type with a CSV body, and the client
reads the body as CSV whatever media type it comes with (``text/csv`` too). The conformance tests hold
the emulator to the document here as on every other endpoint listsync uses.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.dotdigital import emulator_v3
from adapters.dotdigital.emulator_control import vendor
from adapters.dotdigital.emulator_routes import ROUTES, Handler
from adapters.dotdigital.emulator_state import ApiError, DotdigitalState, Knobs
from adapters.emulation.faults import Faults
from adapters.emulation.layer import faulted_app

DENIED = "Authorization has been denied for this request."
CAPPED = (
    "Your account has generated excess API activity and is being temporarily capped. "
    "Please contact support. ERROR_APIUSAGE_EXCEEDED"
)


def create_app(
    state: DotdigitalState | None = None, *, knobs: Knobs | None = None, faults: Faults | None = None
) -> Starlette:
    """The emulator app over ``state`` (a fresh account when omitted) behind ``faults`` (none when
    omitted); ``app.state`` holds them as ``dotdigital``, ``faults`` and ``control``."""
    if state is None:
        state = DotdigitalState(knobs)
    elif knobs is not None:
        state.knobs = knobs
    table = [*ROUTES, *emulator_v3.ROUTES]
    routes = [Route(path, _guarded(state, handler), methods=[method]) for method, path, handler in table]
    handlers = {HTTPException: _http_error}
    return faulted_app(routes, vendor(state), faults, exception_handlers=handlers, dotdigital=state)


# -- the guard every call passes: auth, budget, error mapping ------------------------------------------
def _guarded(state: DotdigitalState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not _authorised(state.knobs, request.headers.get("authorization", "")):
            return _error(401, DENIED)
        response = await _run(state, handler, request)
        state.calls.append((request.method, request.url.path, response.status_code))
        return response

    return endpoint


async def _run(state: DotdigitalState, handler: Handler, request: Request) -> Response:
    knobs = state.knobs
    allowed, headers = _admit(state)
    if not allowed:
        return (
            _error(400, CAPPED) if knobs.rate_scheme == "flat" else _error(429, "Too Many Requests", headers)
        )
    try:
        response = await handler(state, request)
    except ApiError as refused:
        response = (
            JSONResponse({"errorCode": refused.v3_code, "description": refused.message}, refused.status)
            if refused.v3_code
            else _error(refused.status, refused.message)
        )
    response.headers.update(headers)
    return response


def _admit(state: DotdigitalState) -> tuple[bool, dict[str, str]]:
    """Count one call in the scheme's fixed window; say whether it may run and which headers to send."""
    knobs = state.knobs
    if knobs.rate_scheme == "none":
        return True, {}
    flat = knobs.rate_scheme == "flat"
    period, limit = (3600.0, knobs.flat_calls_per_hour) if flat else (60.0, knobs.tiered_calls_per_minute)
    start, used = state.rate_window
    now = state.clock()
    if now - start >= period:
        start, used = now, 0
    allowed = used < limit
    state.rate_window = (start, used + allowed)
    if flat:
        return allowed, {}
    return allowed, {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - state.rate_window[1])),
        "X-RateLimit-Reset": str(
            max(1, round(start + period - now + 0.5))
        ),  # seconds until the window resets
        "X-RateLimit-Scope": knobs.tiered_scope,
    }


def _authorised(knobs: Knobs, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return scheme.lower() == "basic" and (user, password) == (knobs.api_user, knobs.api_password)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"message": message}, status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = f"No HTTP resource was found that matches the request URI '{request.url}'."
    return _error(status, text if status == 404 else "The requested resource does not support this method.")
