"""An in-memory Constant Contact v3 API and its OAuth2 server as one ASGI app, for tests and the sandbox.

Built from the Swagger 2.0 document (``constant-contact-v3-swagger.yaml`` in
``shared/vendor-specs/constant-contact/``) and ``shared/reference/esp-apis.md`` section 2. This module
is the HTTP skin: API calls (``/v3/...``) need a live bearer token (an unknown or expired one is a 401
``{"error_key": "unauthorized"}`` with ``WWW-Authenticate``), spend the application's budget of 4
calls a second and 10,000 a day (over either, a 429 with no rate headers and no Retry-After, as the
vendor answers), and pass through ``_faults``, the one place scripted HTTP faults are injected.
``ApiError`` becomes v3's error array. The authorization server's two endpoints
(``emulator_oauth.py``) are served by the same app, as if ``authz.constantcontact.com`` and
``api.cc.email`` were one host. Behaviour lives in ``ConstantContactState``; the routes in
``emulator_routes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.constantcontact.emulator_oauth import AUTHORIZE, TOKEN, authorize, token
from adapters.constantcontact.emulator_routes import ROUTES, Handler
from adapters.constantcontact.emulator_state import ApiError, ConstantContactState, Knobs

UNAUTHORIZED = {"error_key": "unauthorized", "error_message": "Unauthorized"}


def create_app(state: ConstantContactState | None = None, *, knobs: Knobs | None = None) -> Starlette:
    """The emulator over ``state`` (a fresh account when omitted); ``app.state.constantcontact`` holds it."""
    if state is None:
        state = ConstantContactState(knobs)
    elif knobs is not None:
        state.knobs = knobs
    routes = [Route(path, _guarded(state, handler), methods=[method]) for method, path, handler in ROUTES]
    routes += [
        Route(AUTHORIZE, _plain(state, authorize), methods=["GET"]),
        Route(TOKEN, _plain(state, token), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.constantcontact = state
    return app


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
            response: Response = _error(429, "too_many_requests", "Too many requests.")
        else:
            response = await _faults(state) or await _run(state, handler, request)
        state.calls.append((request.method, request.url.path, response.status_code))
        return response

    return endpoint


async def _run(state: ConstantContactState, handler: Handler, request: Request) -> Response:
    try:
        response = await handler(state, request)
    except ApiError as refused:
        return _error(refused.status, refused.key, refused.message)
    share = state.knobs.malformed_json_share
    if share > 0 and state.rng.random() < share and response.media_type == "application/json":
        body = bytes(response.body)
        return Response(body[: len(body) // 2], response.status_code, media_type="application/json")
    return response


async def _faults(state: ConstantContactState) -> Response | None:
    """The scripted faults of ``Knobs``: latency, then a 500, 503 or 429 by share; None to go on."""
    knobs = state.knobs
    if knobs.latency > 0:
        await asyncio.sleep(knobs.latency)
    shares = (knobs.error_500_share, knobs.error_503_share, knobs.error_429_share)
    if not any(shares):
        return None
    roll = state.rng.random()
    headers = {} if knobs.retry_after is None else {"Retry-After": str(knobs.retry_after)}
    if roll < shares[0]:
        return _error(500, "server_error", "There was a problem with our internal service.")
    if roll < shares[0] + shares[1]:
        return _error(503, "service_unavailable", "Our internal service is temporarily unavailable.", headers)
    if roll < sum(shares):
        return _error(429, "too_many_requests", "Too many requests.", headers)
    return None


def _error(status: int, key: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse([{"error_key": key, "error_message": message}], status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return _error(405, "method_not_allowed", "The method is not allowed for this resource.")
    return _error(status, "not_found", "The requested resource was not found.")
