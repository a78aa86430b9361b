"""The ASGI middleware that puts `Faults` in front of an emulator, and the emulator's control API.

Every call but the control calls passes the layer: it waits ``latency``, draws a fault kind, and
either answers with the vendor's own error body (500; 503 and 429 with ``Retry-After``), or runs the
call and cuts its 2xx JSON answer short, or loses the answer (``timeout``, ``drop``) before or after
the call ran. A call with no fault goes through untouched. The layer buffers the inner answer, which
the emulators' small bodies allow.

A dropped connection, on both transports the emulators are served by:
- over a real socket (uvicorn), ASGI has no way to close a connection before answering (uvicorn sends
  a 500 for an app that raises then), so the layer sends the status line and headers of a body it
  never sends, and raises ``ConnectionDropped``: uvicorn closes the half-sent response, and the
  client's httpx raises ``httpx.RemoteProtocolError`` (peer closed the connection without a complete
  message). The layer keeps uvicorn from logging those on purpose drops as errors.
- through ``httpx.ASGITransport``, which re-raises whatever the app raises, the same
  ``ConnectionDropped`` reaches the client as is. It *is* an ``httpx.RemoteProtocolError``, so the
  clients' ``except httpx.RequestError`` sees the error a real drop gives; no wrapper transport needed.
A timeout holds the call ``timeout_after`` seconds, then drops it the same way; a client with a
shorter deadline gives up first (``engine.http`` enforces deadlines, since ASGITransport ignores
httpx's timeouts).

Control, under ``/_emulator/``, for loopback clients only, never faulted, without vendor credentials:
``GET /_emulator/faults`` (settings by spec name, faults injected by kind, calls seen),
``PUT /_emulator/faults`` with a JSON object of spec names to numbers (all or nothing; 400 says why),
``GET /_emulator/state`` (the account as the emulator dumps it, for a test to compare).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from adapters.emulation.faults import KINDS, STATUSES, Faults, FaultSpecError, parse_spec

PREFIX = "/_emulator/"


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the fault layer to drop a connection; what httpx raises when a server does."""


def _no_vendor_faults(values: Mapping[str, float]) -> None:
    raise FaultSpecError(f"this emulator has no faults named {sorted(values)}")


def _plain_error(status: int, headers: Mapping[str, str]) -> Response:
    return JSONResponse({"error": f"fault injected: HTTP {status}"}, status, headers=dict(headers))


@dataclass(frozen=True)
class Vendor:
    """What the layer needs from the emulator it fronts (any ASGI app will do with the defaults)."""

    # The vendor's own error answer for a status (500, 503, 429), with the headers given (Retry-After).
    error: Callable[[int, Mapping[str, str]], Response] = _plain_error
    # The account as JSON-ready data: records keyed by email or name, for a test to compare.
    dump: Callable[[], dict[str, Any]] = dict
    # Faults only this vendor has (``job_fail``...), by spec name, with their current shares.
    shares: Callable[[], dict[str, float]] = dict
    # Set some of `shares`, all or nothing; FaultSpecError when a value cannot be used.
    tune: Callable[[Mapping[str, float]], None] = _no_vendor_faults
    # How many of those vendor faults were injected, by spec name.
    injected: Callable[[], dict[str, int]] = dict


@dataclass
class Control:
    """The faults and the vendor's hooks together: what ``/_emulator/`` reads and changes."""

    faults: Faults = field(default_factory=Faults)
    vendor: Vendor = field(default_factory=Vendor)

    def settings(self) -> dict[str, float]:
        return {**self.faults.settings(), **self.vendor.shares()}

    def update(self, values: Mapping[str, float]) -> None:
        """Change settings by spec name, all or none; FaultSpecError names what is wrong."""
        known = self.settings()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FaultSpecError(f"unknown faults {unknown}; this emulator knows {', '.join(known)}")
        own = {name: float(v) for name, v in values.items() if name not in self.faults.settings()}
        for name, value in own.items():
            if not 0.0 <= value <= 1.0:
                raise FaultSpecError(f"fault share {name}={value:g} is not between 0 and 1")
        before = {name: known[name] for name in own}
        if own:
            self.vendor.tune(own)
        try:
            self.faults.update({name: v for name, v in values.items() if name not in own})
        except FaultSpecError:
            if own:
                self.vendor.tune(before)
            raise

    def report(self) -> dict[str, Any]:
        injected = {**self.faults.injected, **self.vendor.injected()}
        return {"settings": self.settings(), "injected": injected, "calls": self.faults.calls}

    def dump(self) -> dict[str, Any]:
        return self.vendor.dump()


class FaultLayer:
    """ASGI middleware: the faults of `control` in front of `app`, and ``/_emulator/`` beside it."""

    def __init__(self, app: ASGIApp, control: Control) -> None:
        self.app, self.control = app, control
        _quiet_uvicorn()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(PREFIX):
            await _controlled(self.control, scope, receive, send)
            return
        faults = self.control.faults
        if faults.latency:
            await anyio.sleep(faults.latency)
        kind = faults.draw()
        if kind in STATUSES:
            faults.injected[kind] += 1
            wait = {} if kind == "500" else {"Retry-After": f"{faults.retry_after:g}"}
            await self.control.vendor.error(STATUSES[kind], wait)(scope, receive, send)
            return
        lost = kind in ("timeout", "drop")
        if lost and not faults.strikes_after_run():
            await self._lose(kind, send)
        answer = _Answer()
        await self.app(scope, receive, answer.keep)
        if lost:
            await self._lose(kind, send)
        if kind == "malformed" and answer.cut():
            faults.injected["malformed"] += 1
        await answer.replay(send)

    async def _lose(self, kind: str | None, send: Send) -> None:
        faults = self.control.faults
        faults.injected[str(kind)] += 1
        if kind == "timeout":
            await anyio.sleep(faults.timeout_after)
        # Promise a body, send none: the only way an ASGI app can make uvicorn drop a connection.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        raise ConnectionDropped(f"the emulator dropped the connection ({kind} injected)")


def faulted_app(
    routes: Sequence[BaseRoute],
    vendor: Vendor,
    faults: Faults | None = None,
    *,
    exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
    **held: Any,
) -> Starlette:
    """An emulator's app: `routes` behind the fault layer with `faults` (none when omitted) and
    `vendor`'s hooks. ``app.state`` holds ``faults``, ``control`` and whatever `held` names (the
    vendor's state, its knobs), for tests to steer."""
    control = Control(faults or Faults(), vendor)
    app = Starlette(
        routes=list(routes),
        exception_handlers=dict(exception_handlers or {}),
        middleware=[Middleware(FaultLayer, control=control)],
    )
    app.state.faults, app.state.control = control.faults, control
    for name, value in held.items():
        setattr(app.state, name, value)
    return app


class _Answer:
    """An inner app's answer, kept whole so the layer can cut it or withhold it."""

    def __init__(self) -> None:
        self.start: Message = {}
        self.body = b""

    async def keep(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def cut(self) -> bool:
        """Halve a 2xx JSON body (a cut connection, a proxy's truncation); say whether it did."""
        headers = dict(self.start.get("headers", []))
        json_body = headers.get(b"content-type", b"").startswith(b"application/json")
        if not (200 <= self.start.get("status", 0) < 300 and json_body and self.body):
            return False
        self.body = self.body[: max(1, len(self.body) // 2)]
        return True

    async def replay(self, send: Send) -> None:
        headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({**self.start, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


async def _controlled(control: Control, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    host = request.client.host if request.client else ""
    route = (request.method, scope["path"].removeprefix(PREFIX).rstrip("/"))
    response: Response
    if not _loopback(host):
        response = JSONResponse({"error": "the emulator's control API answers loopback clients only"}, 403)
    elif route == ("GET", "faults"):
        response = JSONResponse(control.report())
    elif route == ("PUT", "faults"):
        response = await _put_faults(control, request)
    elif route == ("GET", "state"):
        response = JSONResponse(control.dump())
    else:
        known = "GET faults, PUT faults, GET state"
        response = JSONResponse({"error": f"no control call {route[0]} {scope['path']} ({known})"}, 404)
    await response(scope, receive, send)


async def _put_faults(control: Control, request: Request) -> Response:
    try:
        values = json.loads(await request.body())
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()
    ):
        return JSONResponse({"error": 'send a JSON object of fault names to numbers, e.g. {"500": 0.1}'}, 400)
    try:
        control.update(values)
    except FaultSpecError as refused:
        return JSONResponse({"error": str(refused)}, 400)
    return JSONResponse(control.report())


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _QuietDrops(logging.Filter):
    """Drops uvicorn's error record for a connection the layer dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def _quiet_uvicorn() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def apply_spec(control: Control, spec: str | None) -> None:
    """Set the faults of a spec such as ``500=0.1,drop=0.05`` (``listsync emulate --faults``)."""
    try:
        control.update(parse_spec(spec or ""))
    except FaultSpecError as wrong:
        raise FaultSpecError(f"cannot use the fault spec {spec!r}: {wrong}") from None


def control_lines(base_url: str, control: Control) -> list[str]:
    """What `listsync emulate` tells a person about the faults and the control API."""
    shares = [*KINDS, *control.vendor.shares()]
    active = {name: value for name, value in control.settings().items() if value and name in shares}
    shown = ",".join(f"{name}={value:g}" for name, value in active.items()) or "none"
    return [
        f"faults: {shown} (seed {control.faults.seed})",
        f"control: GET/PUT {base_url}{PREFIX}faults, GET {base_url}{PREFIX}state (loopback only)",
    ]
