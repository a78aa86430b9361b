"""An in-memory Constant Contact v3 API and its OAuth2 server as one ASGI app, for tests and the sandbox.

Built from the Swagger 2.0 document (``constant-contact-v3-swagger.yaml`` in
``shared/vendor-specs/constant-contact/``) and ``shared/reference/esp-apis.md`` section 2. This module
is the HTTP skin: API calls (``/v3/...``) need a live bearer token (an unknown or expired one is a 401
``{"error_key": "unauthorized"}`` with ``WWW-Authenticate``) and spend the application's budget of 4
calls a second and 10,000 a day (over either, a 429 with no rate headers and no Retry-After, as the
vendor answers). ``ApiError`` becomes v3's error array. The authorization server's two endpoints
(``emulator_oauth.py``) are served by the same app, as if ``authz.constantcontact.com`` and
``api.cc.email`` were one host. In front of it all sits the shared fault layer
(``adapters.emulation``: latency, 500/503/429, timeouts, drops, cut JSON, and the ``/_emulator/``
control API), told by ``emulator_control.py`` how Constant Contact's errors and account look.
Behaviour lives in ``ConstantContactState``; the routes in ``emulator_routes.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.constantcontact.emulator_control import error, v3_error, vendor
from adapters.constantcontact.emulator_oauth import AUTHORIZE, TOKEN, authorize, token
from adapters.constantcontact.emulator_routes import ROUTES, Handler
from adapters.constantcontact.emulator_state import ApiError, ConstantContactState, Knobs
from adapters.emulation.faults import Faults
from adapters.emulation.layer import faulted_app

UNAUTHORIZED = {"error_key": "unauthorized", "error_message": "Unauthorized"}


def create_app(
    state: ConstantContactState | None = None, *, knobs: Knobs | None = None, faults: Faults | None = None
) -> Starlette:
    """The emulator over ``state`` (a fresh account when omitted) behind ``faults`` (none when
    omitted); ``app.state`` holds them as ``constantcontact``, ``faults`` and ``control``."""
    if state is None:
        state = ConstantContactState(knobs)
    elif knobs is not None:
        state.knobs = knobs
    routes = [Route(path, _guarded(state, handler), methods=[method]) for method, path, handler in ROUTES]
    routes += [
        Route(AUTHORIZE, _plain(state, authorize), methods=["GET"]),
        Route(TOKEN, _plain(state, token), methods=["POST"]),
    ]
    handlers = {HTTPException: _http_error}
    return faulted_app(routes, vendor(state), faults, exception_handlers=handlers, constantcontact=state)


def _plain(state: ConstantContactState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(state, request)

    return endpoint


def _guarded(state: ConstantContactState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not state.grants.valid(bearer.strip()):
            headers = {"WWW-Authenticate": 'Bearer realm="api.cc.email"'}
            return JSONResponse(UNAUTHORIZED, 401, headers=headers)
        if not state.admit():
            response: Response = error(429, {})
        else:
            response = await _run(state, handler, request)
        state.calls.append((request.method, request.url.path, response.status_code))
        return response

    return endpoint


async def _run(state: ConstantContactState, handler: Handler, request: Request) -> Response:
    try:
        return await handler(state, request)
    except ApiError as refused:
        return v3_error(refused.status, refused.key, refused.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return v3_error(405, "method_not_allowed", "The method is not allowed for this resource.")
    return v3_error(status, "not_found", "The requested resource was not found.")
