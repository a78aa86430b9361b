"""Catching the browser's way back from an OAuth2 consent page: on loopback, or pasted by a person.

After a person allows listsync at the vendor, the vendor sends their browser to the redirect URI with
``code`` and ``state`` (or ``error``) in the query. When that URI is plain http on a loopback address
(``localhost``, ``127.0.0.1``, ``[::1]``), `caught_redirect` listens there, on the URI's own port,
and takes the first request to its path (RFC 8252 section 7.3, what desktop and command-line clients
do); anything else it serves answers 404. Otherwise, or on request, `pasted_redirect` reads what
the person copied from the browser's address bar: the whole redirect URL, its query, or the bare
code.

The listener is uvicorn (as the emulators use) with its access log off: the code travels in the
request line and must not reach a log. The page it answers names neither code nor state.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.from_thread
import anyio.lowlevel
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from engine.emulating import loopback_socket
from engine.errors import PermanentError

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>listsync</title></head>
<body><p>listsync has the answer. You can close this tab and go back to the terminal.</p></body></html>"""


@dataclass(frozen=True)
class Redirect:
    """What came back: the redirect's query parameters. ``bare`` when only a code was pasted, so
    there is no ``state`` to check (the PKCE verifier still ties the code to this request)."""

    params: dict[str, str] = field(repr=False)
    bare: bool = False


@dataclass(frozen=True)
class Loopback:
    """Where a loopback redirect URI points: the host as written, its port, its path."""

    host: str
    port: int
    path: str


def loopback(redirect_uri: str) -> Loopback | None:
    """The loopback address ``redirect_uri`` names, if it is plain http on one; None otherwise (https
    needs a certificate no browser would trust here, and another host is not this machine)."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme != "http" or not _is_loopback(host):
        return None
    try:
        port = parts.port or 80
    except ValueError:
        return None
    return Loopback(host, port, parts.path or "/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handling: Ctrl-C must interrupt `listsync auth` at once, not stop
    the listener and leave the command waiting."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def caught_redirect(where: Loopback) -> AsyncIterator[Callable[[], Awaitable[Redirect]]]:
    """Listen on ``where`` until the block ends; yields an async function that returns the first
    redirect to arrive. The port is bound before the block starts, so a busy port fails before anyone
    is sent to the browser."""
    arrived = anyio.Event()
    caught: list[Redirect] = []

    async def take(request: Request) -> Response:
        if not caught:
            caught.append(Redirect(dict(request.query_params)))
            arrived.set()
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    async def first() -> Redirect:
        await arrived.wait()
        return caught[0]

    app = Starlette(routes=[Route(where.path, take, methods=["GET"])])
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off")
    server = _QuietServer(config)
    listeners = _listen(where)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(partial(server.serve, sockets=listeners))
            try:
                yield first
            finally:
                server.should_exit = True
    finally:
        for listener in listeners:
            listener.close()


def _listen(where: Loopback) -> list[socket.socket]:
    """The listening sockets: ``localhost`` on both 127.0.0.1 and ::1 when this machine has IPv6, as
    a browser may try either; a literal address on itself."""
    host = "127.0.0.1" if where.host == "localhost" else where.host.strip("[]")
    try:
        listeners = [loopback_socket(host, where.port)]
    except PermanentError as busy:
        raise PermanentError(
            f"{busy} (for the redirect URI): stop what uses the port, register another loopback redirect "
            "URI and set it as the adapter's redirect_uri, or paste the redirect with --paste"
        ) from None
    if where.host == "localhost" and socket.has_ipv6:
        # No IPv6 loopback here (or ::1 taken): browsers fall back to 127.0.0.1.
        with suppress(PermanentError):
            listeners.append(loopback_socket("::1", where.port))
    return listeners


async def pasted_redirect() -> Redirect:
    """The first non-blank line a person pastes on stdin, read as a redirect (see `parse_pasted`)."""
    while True:
        line = await _stdin_line()
        if not line:
            raise PermanentError("stdin ended before a redirect URL or code was pasted; nothing was stored")
        if line.strip():
            return parse_pasted(line)


async def _stdin_line() -> str:
    """One line of stdin ("" at its end), read on a daemon thread of its own: a person who never
    pastes must not keep the process alive past the timeout, as a blocked worker thread of anyio's
    would (they are joined at exit)."""
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    read: list[str] = []

    def deliver(line: str) -> None:
        read.append(line)
        done.set()

    def reader() -> None:
        line = sys.stdin.readline()
        with suppress(anyio.RunFinishedError):  # the command ended meanwhile: nobody waits for it
            anyio.from_thread.run_sync(deliver, line, token=token)

    threading.Thread(target=reader, name="listsync stdin", daemon=True).start()
    await done.wait()
    return read[0]


def parse_pasted(text: str) -> Redirect:
    """The browser's address bar after the redirect (``https://…/cb?code=…&state=…``), its query
    alone (``code=…&state=…``), or a bare code."""
    text = text.strip()
    if "://" in text:
        return Redirect(dict(parse_qsl(urlsplit(text).query)))
    if "=" in text:
        return Redirect(dict(parse_qsl(text.lstrip("?"))))
    return Redirect({"code": text}, bare=True)
