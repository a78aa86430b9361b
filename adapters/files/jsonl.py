"""Reading and writing the files adapter's JSON Lines format.

One object per line: ``email``, ``opted_out`` (bool), ``lists`` (list names; campaign names on the
CRM side), the mapped fields as top-level keys, and optionally ``kind`` ("person"/"lead"),
``opt_out_reason``, ``undeliverable``, ``memberships`` ({name: status}, overrides ``lists``), and
``deleted`` (true in a delta file marks a deletion). Rows are kept as the raw bytes of their line,
so an unchanged row is fingerprinted without being decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from engine.fingerprints import fingerprint as fingerprint
from engine.records import Campaign, Row

BLOCK = 16 * 2**20
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_RESERVED = frozenset(
    {
        "email",
        "kind",
        "opted_out",
        "opt_out_reason",
        "undeliverable",
        "lists",
        "memberships",
        "deleted",
    }
)


def read_lines(path: Path) -> list[bytes]:
    """Non-empty lines of a JSON Lines file; a missing file has none."""
    return [line for batch in read_batches(path) for line in batch]


def read_batches(path: Path, block: int = BLOCK) -> Iterator[list[bytes]]:
    """Non-empty lines of a JSON Lines file, a block at a time, so a large file is never held
    whole; a missing file has none."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with handle:
        carry = b""
        while data := handle.read(block):
            lines = (carry + data).split(b"\n")
            carry = lines.pop()  # the part after the last newline: the start of the next line
            yield _cleaned(lines)
        if carry.strip():
            yield _cleaned([carry])


def _cleaned(lines: list[bytes]) -> list[bytes]:
    if lines and lines[0].endswith(b"\r"):
        lines = [line.rstrip(b"\r") for line in lines]
    # Empty lines are dropped, lines of nothing but spaces skipped when decoded. `in` on the list
    # is a C loop; a filter is only run when there is something to filter.
    return [line for line in lines if line] if b"" in lines else lines


def decode_object(line: bytes) -> dict[str, Any]:
    try:
        value = _decoder.decode(line)
    except msgspec.DecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError("each line must be a JSON object")
    return value


def encode_object(value: dict[str, Any]) -> bytes:
    return _encoder.encode(value)


def to_row(line: bytes) -> Row:
    """A line as the engine's `Row`; `ValueError` says what is wrong with it."""
    obj = decode_object(line)
    opted_out = obj.get("opted_out", False)
    undeliverable = obj.get("undeliverable", False)
    if not isinstance(opted_out, bool) or not isinstance(undeliverable, bool):
        raise ValueError("opted_out and undeliverable must be true or false")
    reason = obj.get("opt_out_reason")
    return Row(
        email=obj.get("email"),
        kind=str(obj.get("kind", "person")),
        opted_out=opted_out,
        opt_out_reason=reason if isinstance(reason, str) else None,
        undeliverable=undeliverable,
        values={key: value for key, value in obj.items() if key not in _RESERVED},
        memberships=_memberships(obj),
    )


def _memberships(obj: dict[str, Any]) -> dict[str, str]:
    explicit = obj.get("memberships")
    if isinstance(explicit, dict):
        return {str(name): str(status) for name, status in explicit.items()}
    lists = obj.get("lists", [])
    if not isinstance(lists, list):
        raise ValueError("lists must be a list of names")
    return {str(name): "member" for name in lists}


def read_campaigns(path: Path) -> list[Campaign]:
    """Campaigns file: objects with ``key`` (or ``name``), ``name``, ``status`` and any other fields."""
    campaigns = []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            obj = decode_object(line)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
        name = str(obj.get("name", "")).strip()
        if not name:
            raise ValueError(f"{path}:{number}: a campaign needs a name")
        extra = {k: "" if v is None else str(v) for k, v in obj.items() if k not in ("key", "name", "status")}
        campaigns.append(Campaign(str(obj.get("key", name)), name, str(obj.get("status", "open")), extra))
    return campaigns


def emails_of(lines: list[bytes]) -> Iterator[tuple[int, str]]:
    """(line index, normalised email) for every line that has a readable email."""
    for index, line in enumerate(lines):
        try:
            email = decode_object(line).get("email")
        except ValueError:
            continue
        if isinstance(email, str) and email.strip():
            yield index, email.strip().lower()


def write_atomically(path: Path, chunks: list[bytes]) -> None:
    """Replace `path` with the given lines, never leaving a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            handle.write(b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
