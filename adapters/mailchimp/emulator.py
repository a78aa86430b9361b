"""An in-memory Mailchimp Marketing API 3.0 as an ASGI app, for tests (through ``httpx.ASGITransport``),
the loopback conformance run of the official client, and the sandbox.

Built from the published OpenAPI document (``shared/vendor-specs/mailchimp/openapi0.json``) and
``shared/reference/esp-apis.md``. This module is the HTTP skin: it checks the API key (HTTP Basic with
any user name and the key as password, or ``Bearer``/``apikey`` with the key; a host
``<dc>.api.mailchimp.com`` must name the key's data centre, its ``-us21`` suffix), refuses the eleventh
simultaneous connection with 429 as Mailchimp does, and renders ``ApiError`` as
``application/problem+json``. In front of it all sits the shared fault layer (``adapters.emulation``:
latency, 500/503/429, timeouts, drops, cut JSON, and the ``/_emulator/`` control API), told by
``emulator_control.py`` how Mailchimp's errors and account look. Behaviour lives in ``MailchimpState``;
handlers in ``emulator_routes.py``; batches and their results archive in ``emulator_batches.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Message

from adapters.emulation.faults import Faults
from adapters.emulation.layer import faulted_app
from adapters.mailchimp import emulator_batches
from adapters.mailchimp.emulator_control import vendor
from adapters.mailchimp.emulator_routes import ROUTES, Handler
from adapters.mailchimp.emulator_state import ApiError, Knobs, MailchimpState
from adapters.mailchimp.emulator_wire import ok, partial, problem

_VENDOR_HOST = re.compile(r"^(?P<dc>[a-z]+[0-9]+)\.api\.mailchimp\.com$")
MISSING = ApiError(401, "API Key Missing", "Your request did not include an API key.")
INVALID = ApiError(
    401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."
)


def create_app(
    state: MailchimpState | None = None, *, knobs: Knobs | None = None, faults: Faults | None = None
) -> Starlette:
    """The emulator app over ``state`` (a fresh account when omitted) behind ``faults`` (none when
    omitted); ``app.state`` holds them as ``mailchimp``, ``faults`` and ``control``."""
    if state is None:
        state = MailchimpState(knobs)
    elif knobs is not None:
        state.knobs = knobs
    routes = [Route(path, _guarded(state, handler), methods=[method]) for method, path, handler in ROUTES]
    routes.append(Route(emulator_batches.RESULTS_PATH, _results(state), methods=["GET"]))
    handlers = {HTTPException: _http_error(state)}
    app = faulted_app(routes, vendor(state), faults, exception_handlers=handlers, mailchimp=state)
    inner = Router([Route(path, _api(state, handler), methods=[method]) for method, path, handler in ROUTES])
    app.state.dispatch = _dispatcher(state, app, inner)
    return app


# -- the guard every call passes: auth, the connection cap, error mapping ------------------------------
def _guarded(state: MailchimpState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    api = _api(state, handler)

    async def endpoint(request: Request) -> Response:
        refused = _credentials(state.knobs, request)
        if refused is not None:
            return problem(state, refused)
        if state.in_flight >= state.knobs.max_connections:
            detail = f"You have exceeded the limit of {state.knobs.max_connections} simultaneous connections."
            response = problem(state, ApiError(429, "Too Many Requests", detail))
        else:
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
            try:
                if state.knobs.hold > 0:
                    await asyncio.sleep(state.knobs.hold)
                response = await api(request)
            finally:
                state.in_flight -= 1
        state.calls.append((request.method, request.url.path, response.status_code))
        return response

    return endpoint


def _api(state: MailchimpState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(state, request)
        except ApiError as refused:
            return problem(state, refused)
        fields, exclude = (request.query_params.get(n) for n in ("fields", "exclude_fields"))
        if (fields or exclude) and response.media_type == "application/json" and response.status_code < 300:
            return ok(partial(json.loads(bytes(response.body)), fields, exclude), response.status_code)
        return response

    return endpoint


def _credentials(knobs: Knobs, request: Request) -> ApiError | None:
    """Why the request's API key is refused, or None when it is the account's."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not value:
        return MISSING
    key = value.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(key, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return INVALID
    elif scheme.lower() not in ("bearer", "apikey"):
        return INVALID
    host = _VENDOR_HOST.match(request.url.hostname or "")
    if key != knobs.api_key or (host is not None and host["dc"] != knobs.data_centre):
        return INVALID
    return None


def _results(state: MailchimpState) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await emulator_batches.download(state, request)

    return endpoint


def _dispatcher(state: MailchimpState, app: Starlette, router: Router) -> emulator_batches.Dispatch:
    """Run one batch operation through the handlers (not the guard) and collect its answer."""

    async def dispatch(method: str, path: str, params: dict[str, str], body: bytes) -> tuple[int, bytes]:
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": urlencode(params).encode(), "server": ("us21.api.mailchimp.com", 443),
            "headers": [(b"host", b"us21.api.mailchimp.com"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 0), "app": app,
        }  # fmt: skip
        answer: dict[str, Any] = {"status": 500, "body": b""}

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        try:
            await router(scope, receive, send)
        except HTTPException as missing:
            error = _route_error(missing.status_code)
            return error.status, bytes(problem(state, error).body)
        return int(answer["status"]), bytes(answer["body"])

    return dispatch


def _route_error(status: int) -> ApiError:
    if status == 405:
        return ApiError(405, "Method Not Allowed", "The requested method and resource are not compatible.")
    return ApiError(404, "Resource Not Found", "The requested resource could not be found.")


def _http_error(state: MailchimpState) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return problem(state, _route_error(status), headers)

    return handler
