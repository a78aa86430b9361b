"""`listsync emulate NAME`: a vendor emulator with generated data, served on loopback.

Emulators live with their adapters and register a sandbox in the ``listsync.emulators``
entry-point group (the engine imports no adapter). A sandbox builds the ASGI app with realistic
generated data (or ``contacts`` of them, 0 for an empty account), injecting the faults of a spec
such as ``500=0.1,drop=0.05``, and says how to reach it (base URL, credentials, control API);
uvicorn serves it until interrupted. Only loopback addresses are served: an emulator accepts its
fixed test credentials. The emulator's state lives as long as the process, so clients can crash and
restart against it; on shutdown its dump (``GET /_emulator/state``) can be written to a file.
"""

from __future__ import annotations

import inspect
import ipaddress
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import httpx
import uvicorn
from rich.console import Console

from engine.errors import PermanentError

GROUP = "listsync.emulators"


class Sandbox(Protocol):
    """An emulator, its data generated from `seed`, and what to tell a person about reaching it.
    `faults` is a fault spec (PermanentError when it cannot be used); `contacts` how many records to
    generate instead of the sandbox's default (0: none); `unlimited` lifts the vendor's call rate
    limits (a long crash or soak test makes more calls than an hour allows; listsync's own budget
    still paces it)."""

    def __call__(
        self,
        *,
        base_url: str,
        seed: int,
        faults: str | None = None,
        contacts: int | None = None,
        unlimited: bool = False,
    ) -> tuple[Callable[..., Any], list[str]]: ...


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


async def serve(
    name: str,
    host: str,
    port: int,
    seed: int,
    out: Console,
    *,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
    state_file: Path | None = None,
) -> None:
    """Serve emulator `name` on `host:port` until interrupted (Ctrl-C, SIGTERM); then write its state
    to `state_file` when given."""
    make = sandbox(name)
    # Only the options given are passed on, so a sandbox without faults or sizes still serves.
    given = (("faults", faults), ("contacts", contacts), ("unlimited", unlimited or None))
    options: dict[str, Any] = {k: v for k, v in given if v is not None}
    refused = [k for k in options if k not in inspect.signature(make).parameters]
    if refused:
        raise PermanentError(f"the {name} emulator does not take --{', --'.join(refused)}")
    listener = loopback_socket(host, port)
    try:
        bound = listener.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{bound}"
        app, lines = make(base_url=base_url, seed=seed, **options)
    except BaseException:
        listener.close()
        raise
    out.print(f"{name} emulator listening on {base_url}")
    for line in lines:
        out.print(f"  {line}")
    out.print("Press Ctrl-C to stop.")
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_stop_on_signals, server)
        await server.serve(sockets=[listener])
        tasks.cancel_scope.cancel()
    if state_file is not None:
        await save_state(app, state_file)
        out.print(f"state written to {state_file}")
    out.print("Stopped.")


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: it re-raises the SIGINT it caught once stopped, which
    would cut short what `serve` does after stopping (writing the state file)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _stop_on_signals(server: uvicorn.Server) -> None:
    """Ctrl-C or SIGTERM stops the server gracefully; a second one stops it at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            server.force_exit = server.should_exit
            server.should_exit = True


async def save_state(app: Callable[..., Any], path: Path) -> None:
    """Write the emulator's ``GET /_emulator/state`` dump to `path`, asking the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/_emulator/state")
    if answer.status_code != 200:
        raise PermanentError(
            f"this emulator cannot dump its state (GET /_emulator/state: {answer.status_code})"
        )
    await anyio.Path(path).write_bytes(answer.content)
