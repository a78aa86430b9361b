"""`listsync emulate NAME`: a vendor emulator with generated data, served on loopback.

Emulators live with their adapters and register a sandbox in the ``listsync.emulators``
entry-point group (the engine imports no adapter). A sandbox builds the ASGI app with realistic
generated data and says how to reach it (base URL, credentials); uvicorn serves it until
interrupted. Only loopback addresses are served: an emulator accepts its fixed test credentials.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, cast

import uvicorn
from rich.console import Console

from engine.errors import PermanentError

GROUP = "listsync.emulators"


class Sandbox(Protocol):
    """An emulator, its data generated from `seed`, and what to tell a person about reaching it."""

    def __call__(self, *, base_url: str, seed: int) -> tuple[Callable[..., Any], list[str]]: ...


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def sandbox(name: str) -> Sandbox:
    for ep in entry_points(group=GROUP, name=name):
        return cast(Sandbox, ep.load())
    raise PermanentError(f"no emulator named {name!r}; available: {', '.join(available()) or 'none'}")


def loopback_socket(host: str, port: int) -> socket.socket:
    """A listening socket on a loopback address (port 0 picks a free one)."""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise PermanentError(f"emulators serve loopback addresses only, not {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise PermanentError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    listener.listen(128)
    return listener


async def serve(name: str, host: str, port: int, seed: int, out: Console) -> None:
    """Serve emulator `name` on `host:port` until cancelled (Ctrl-C)."""
    listener = loopback_socket(host, port)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown}:{bound}"
    app, lines = sandbox(name)(base_url=base_url, seed=seed)
    out.print(f"{name} emulator listening on {base_url}")
    for line in lines:
        out.print(f"  {line}")
    out.print("Press Ctrl-C to stop.")
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve(sockets=[listener])
