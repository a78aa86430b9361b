"""What every vendor adapter does the same way, written once.

The adapters differ in everything a vendor decides (endpoints, error bodies, import formats), and
agree on these: naming the call an answer belongs to, decoding an answer into wire Structs with the
engine's errors (a wrong shape is permanent, cut JSON transient), reading the settings table,
reading a time cursor, what an import can and cannot write, and repeating an idempotent read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import msgspec

from engine.errors import PermanentError, TransientError
from engine.plans import Op, OpKind
from engine.retrying import with_retries
from engine.values import Value

T = TypeVar("T")
_DECODERS: dict[object, msgspec.json.Decoder[Any]] = {}


def call_name(response: httpx.Response) -> str:
    """The call a response answers, as ``METHOD /path``, for messages."""
    try:
        request = response.request
    except RuntimeError:  # a Response built without a request, as in tests
        return "a call"
    return f"{request.method} {request.url.path}"


def decode_answer(vendor: str, response: httpx.Response, type_: type[T]) -> T:
    """`response`'s JSON as `type_`; PermanentError on a shape the API does not document, and
    TransientError on JSON cut or garbled on the way."""
    decoder = _DECODERS.get(type_) or _DECODERS.setdefault(type_, msgspec.json.Decoder(type_))
    try:
        decoded: T = decoder.decode(response.content)
        return decoded
    except msgspec.ValidationError as wrong:
        raise PermanentError(
            f"{vendor}'s answer to {call_name(response)} does not have the documented shape ({wrong}); "
            "the API may have changed: report it with this message."
        ) from None
    except msgspec.DecodeError:
        raise TransientError(
            f"{vendor}'s answer to {call_name(response)} is not valid JSON (cut or garbled on the way, "
            "most likely by a proxy or a dropped connection); asking again usually gives a whole one."
        ) from None


def settings_of(settings: Any, type_: type[T]) -> T:
    """An adapter's settings as its Struct, converted from the rules' table when they are not yet."""
    return settings if isinstance(settings, type_) else msgspec.convert(settings, type_)


def parse_cursor(cursor: str | None) -> datetime | None:
    """The time a cursor names; an unreadable cursor means a full read, which is always safe."""
    if cursor is None:
        return None
    try:
        moment = datetime.fromisoformat(cursor)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def import_text(value: Value) -> str:
    """A plan value as an import cell or property (booleans as true/false, dates already ISO)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def import_refusal(kind: OpKind, op: Op, cannot_clear: str) -> str | None:
    """Why an upsert or add_member op cannot go into an import as asked, or None. `cannot_clear`
    says, for the vendor, why a field cleared by the op cannot be written (`{fields}` is filled)."""
    if not op.email:
        return f"a {kind} op without an email"
    if kind == "add_member":
        return None if op.list else "an add_member op without a list"
    opted = op.changes.get("opted_out")
    if opted is not None and opted.new is not False:
        return "an opt-out is written by opt_out_esp, not by an upsert"
    cleared = sorted(name for name, change in op.changes.items() if change.new is None)
    return cannot_clear.format(fields=", ".join(cleared)) if cleared else None


async def idempotent(read: Callable[[], Awaitable[T]], *, retry: bool) -> T:
    """One read that changes nothing on the vendor's side; with `retry`, repeated after transient
    failures as the engine repeats any call. A snapshot is hundreds of page reads: without this, one
    dropped page would end the whole plan, and repeating the snapshot from its first page would
    rarely get through at a high failure rate. A write is never repeated here (the engine decides)."""
    return await with_retries(read) if retry else await read()
