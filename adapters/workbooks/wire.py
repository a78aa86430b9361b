"""What the Workbooks client sends and returns: typed values, and the conversions to and from the wire.

Workbooks speaks form-encoded "square arrays" in and loosely shaped JSON out
(`shared/reference/workbooks-api.md` §3-§4). Keeping both conversions here, as pure functions over
frozen Structs, lets the client stay a thin transport and lets the conversions be tested without HTTP.
Choices where the reference is UNSURE:
- A stale `lock_version` is recognised by a `failures` entry naming the object (by `index` or `id`),
  or by an error on `lock_version`, or by the documented "already been updated elsewhere" message.
- An object without an `affected_object_information` entry counts as not saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import msgspec

WORKBOOKS_TIME = "%a %b %d %H:%M:%S UTC %Y"
STALE_MESSAGE = "already been updated elsewhere"
MAX_BATCH = 100  # objects per PUT, a documented limit

Value = str | int | float | bool | datetime | date | None
Method = Literal["POST", "PUT", "DELETE"]
Pairs = list[tuple[str, str]]


class Page(msgspec.Struct, frozen=True):
    """One page of a read: the rows (flat keys, related fields in brackets) and the size of the whole set.

    Rows stay loosely typed (their columns are whatever was selected), but every row must carry an
    integer `id`, and a `lock_version`, when present, must be an integer: the adapter keys records
    by the one and writes with the other. A row without them is refused here, as a bad answer,
    rather than failing later as a KeyError deep in the adapter.
    """

    data: list[dict[str, Any]]
    total: int

    def __post_init__(self) -> None:
        for index, row in enumerate(self.data):
            for column, required in (("id", True), ("lock_version", False)):
                value = row.get(column)
                whole = isinstance(value, int) and not isinstance(value, bool)
                if not whole and (required or value is not None):
                    raise ValueError(f"row {index} has {'no' if value is None else 'a non-integer'} {column}")


class LoginSession(msgspec.Struct, frozen=True):
    """What `login.api` answers that the client keeps; the session cookie lives in the httpx cookie jar."""

    authenticity_token: str
    session_id: str = ""
    database_name: str = ""
    logical_database_id: int | None = None
    user_id: int | None = None
    login_name: str = ""
    person_name: str = ""


class WriteObject(msgspec.Struct, frozen=True):
    """One object of a batched PUT. `fields` use the nested names of reads, e.g. `main_location[email]`."""

    method: Method
    id: int = 0
    lock_version: int = 0
    fields: Mapping[str, Value] = msgspec.field(default_factory=dict)

    @classmethod
    def create(cls, fields: Mapping[str, Value]) -> WriteObject:
        return cls("POST", 0, 0, fields)

    @classmethod
    def update(cls, record_id: int, lock_version: int, fields: Mapping[str, Value]) -> WriteObject:
        return cls("PUT", record_id, lock_version, fields)

    @classmethod
    def delete(cls, record_id: int, lock_version: int) -> WriteObject:
        return cls("DELETE", record_id, lock_version)


class WriteResult(msgspec.Struct, frozen=True):
    """The outcome of one object. A refusal is `ok=False` with a `reason`; `stale` means reload and retry."""

    ok: bool
    id: int | None = None
    lock_version: int | None = None
    errors: dict[str, list[str]] = msgspec.field(default_factory=dict)
    reason: str = ""
    stale: bool = False
    record: dict[str, Any] | None = None  # the saved attributes, as `affected_objects` returns them


def format_time(value: datetime) -> str:
    """A datetime as Workbooks writes it (UTC); naive values are taken as UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime(WORKBOOKS_TIME)


def parse_time(text: str) -> datetime:
    """A Workbooks datetime such as `Fri Oct 03 14:31:20 UTC 2025`, as an aware UTC datetime."""
    return datetime.strptime(text.strip(), WORKBOOKS_TIME).replace(tzinfo=UTC)


def encode_value(value: Value) -> str:
    """A value as a form field: None is `:null_value:`, booleans `true`/`false`, times in UTC."""
    if value is None:
        return ":null_value:"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def wire_key(name: str) -> str:
    """`org_lead_party[main_location[email]]` as the write key `org_lead_party[main_location][email][]`."""
    parts: list[str] = re.findall(r"[^\[\]]+", name)
    return parts[0] + "".join(f"[{p}]" for p in parts[1:]) + "[]"


def write_pairs(objects: Sequence[WriteObject]) -> Pairs:
    """The body of one PUT: the working-set filter, then every key once per object, sorted like the bindings.

    Keys an object lacks are `:no_value:` (leave unchanged). The working set names every id (0 for a
    create) with `_fm=or`, as the official bindings do.
    """
    ids = list(dict.fromkeys(obj.id for obj in objects))
    pairs: Pairs = [("_fm", "or")]
    for record_id in ids:
        pairs += [("_ff[]", "id"), ("_ft[]", "eq"), ("_fc[]", str(record_id))]
    names = sorted({name for obj in objects for name in obj.fields} - {"id", "lock_version", "__method"})
    for obj in objects:
        pairs += [
            ("__method[]", obj.method),
            ("id[]", str(obj.id)),
            ("lock_version[]", str(obj.lock_version)),
        ]
        for name in names:
            value = encode_value(obj.fields[name]) if name in obj.fields else ":no_value:"
            pairs.append((wire_key(name), value))
    return pairs


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value in (None, "", {}) else [str(value)]


def _field_errors(body: Mapping[str, Any], index: int) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    per_object = body.get("affected_object_errors")
    if isinstance(per_object, list) and index < len(per_object) and isinstance(per_object[index], dict):
        errors |= {str(k): _messages(v) for k, v in per_object[index].items()}
    keyed = body.get("errors")
    entry = keyed.get(f"[{index}]") if isinstance(keyed, dict) else None
    if isinstance(entry, dict):
        errors |= {str(k): errors.get(str(k)) or _messages(v) for k, v in entry.items()}
    return errors


def _is_stale(body: Mapping[str, Any], index: int, obj: WriteObject, errors: Mapping[str, list[str]]) -> bool:
    failures = body.get("failures")
    for failure in failures if isinstance(failures, list) else []:
        if isinstance(failure, dict) and (
            failure.get("index") == index or (obj.id and failure.get("id") == obj.id)
        ):
            return True
    texts = [m for ms in errors.values() for m in ms]
    return "lock_version" in errors or any(STALE_MESSAGE in t for t in texts)


def write_results(body: Mapping[str, Any], objects: Sequence[WriteObject]) -> list[WriteResult]:
    """Per-object results of one PUT answered with HTTP 200, in request order."""
    info = body.get("affected_object_information")
    affected = body.get("affected_objects")
    results = []
    for index, obj in enumerate(objects):
        entry = info[index] if isinstance(info, list) and index < len(info) else None
        saved = affected[index] if isinstance(affected, list) and index < len(affected) else None
        record = saved if isinstance(saved, dict) else None
        errors = _field_errors(body, index)
        if isinstance(entry, dict):
            ok = entry.get("success") is True and not errors
            general = _messages(entry.get("errors"))
        else:
            ok = record is not None and not errors and body.get("success") is not False
            general = [] if ok else ["Workbooks returned no result for this object"]
        if ok:
            found = record or {}
            record_id = _as_int(found.get("id")) or obj.id or None
            results.append(WriteResult(True, record_id, _as_int(found.get("lock_version")), record=record))
            continue
        reasons = [f"{k} {m}" for k, ms in errors.items() for m in ms] or general or ["not saved"]
        stale = _is_stale(body, index, obj, errors)
        results.append(
            WriteResult(False, obj.id or None, obj.lock_version, errors, "; ".join(reasons), stale)
        )
    return results


class MetadataField(msgspec.Struct, frozen=True):
    name: str


class MetadataType(msgspec.Struct, frozen=True):
    """One entry of `metadata/types.api`, cut down to what the client selects."""

    class_name: str
    controller_path: str = ""
    fields: list[MetadataField] = msgspec.field(default_factory=list)
