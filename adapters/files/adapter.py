"""The files adapter: one JSON Lines file per side, written back atomically.

It plays either side. As the CRM it may name a campaigns file, whose campaigns become lists; as
either side it may name a delta file holding only the rows changed since the last read, which is
what incremental snapshots look like with a vendor. Writes are applied in memory and made durable
by `flush`, which replaces the file in one rename; lists and custom fields the engine creates are
kept in a small sidecar file beside it (``<path>.meta.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import xxhash

from adapters.files import jsonl
from engine.contract import AdapterContext, Capabilities, JobStatus, Outcome, Snapshot
from engine.plans import OP_KINDS, REPORT_ONLY, Op, OpKind
from engine.records import Campaign
from engine.ruleset import FieldType, Side
from engine.simulating import CREATING

# The files adapter can play either side, so it executes every op that is not report-only.
WRITES = frozenset(OP_KINDS) - REPORT_ONLY


class FilesSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[crm.settings]`` / ``[esp.settings]`` for ``adapter = "files"``; paths relative to the rules."""

    path: str
    campaigns: str | None = None
    delta: str | None = None
    max_list_name: int = 255
    campaign_field_length: int = 255
    campaign_key_length: int = 40


class _Meta(msgspec.Struct):
    lists: list[str] = []
    fields: dict[str, FieldType] = {}


class FilesAdapter:
    """Reads and writes one side's JSON Lines file."""

    name: ClassVar[str] = "files"
    settings_type: ClassVar[type[msgspec.Struct]] = FilesSettings

    def __init__(self, settings: FilesSettings, context: AdapterContext) -> None:
        self._settings = settings
        self._context = context
        self._path = self._resolve(settings.path)
        self._meta_path = self._path.with_name(self._path.name + ".meta.json")
        self._lines: list[bytes] | None = None
        self._index: dict[str, int] = {}
        self._meta: _Meta | None = None
        self._dirty = False

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        files = (
            msgspec.convert(settings, FilesSettings) if not isinstance(settings, FilesSettings) else settings
        )
        return Capabilities(
            max_batch=10_000,
            max_list_name=files.max_list_name,
            campaign_field_lengths={
                "key": files.campaign_key_length,
                "name": files.campaign_field_length,
            },
            writes=WRITES,
        )

    def _resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self._context.base_dir / candidate

    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        delta = self._resolve(self._settings.delta) if self._settings.delta else None
        incremental = cursor is not None and delta is not None
        deleted: list[str] = []
        lines: list[bytes] = []
        load = None
        if incremental and delta is not None:
            lines, deleted = _split_deletions(jsonl.read_lines(delta))
        else:
            # Read by the engine, maybe in a worker process: a picklable function of the path.
            load = partial(jsonl.read_batches, self._path)
        meta = self._load_meta()
        version = await self.version()
        return Snapshot(
            complete=not incremental,
            version=version,
            payloads=lines,
            load=load,
            size=_size(self._path) if load is not None else 0,
            decode=jsonl.to_row,
            deleted=deleted,
            campaigns=self._campaigns(),
            lists={name: name for name in meta.lists},
            fields=dict(meta.fields),
            cursor=version,
        )

    def _campaigns(self) -> list[Campaign]:
        if self._settings.campaigns is None:
            return []
        return jsonl.read_campaigns(self._resolve(self._settings.campaigns))

    async def version(self) -> str:
        """Changes whenever an input file is replaced or rewritten (inode, size, modification time)."""
        parts = []
        for path in self._inputs():
            try:
                stat = path.stat()
            except FileNotFoundError:
                parts.append("-")
                continue
            parts.append(f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}")
        return xxhash.xxh3_64_hexdigest("|".join(parts).encode())

    def _inputs(self) -> list[Path]:
        extra = [self._settings.campaigns, self._settings.delta]
        return [self._path, self._meta_path, *(self._resolve(p) for p in extra if p)]

    def _read(self) -> list[bytes]:
        if self._lines is None:
            self._lines = jsonl.read_lines(self._path)
        return self._lines

    def _load_meta(self) -> _Meta:
        if self._meta is None:
            try:
                self._meta = msgspec.json.decode(self._meta_path.read_bytes(), type=_Meta)
            except FileNotFoundError:
                self._meta = _Meta()
        return self._meta

    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        await self._context.budget.acquire()
        if kind not in WRITES:
            return [Outcome(False, f"the files adapter cannot {kind}")] * len(ops)
        if kind in ("create_list", "create_field"):
            return [self._account_op(op) for op in ops]
        if not self._index:
            self._index = dict((email, i) for i, email in jsonl.emails_of(self._read()))
        return [self._record_op(kind, op) for op in ops]

    def _account_op(self, op: Op) -> Outcome:
        meta = self._load_meta()
        if op.kind == "create_list" and op.list and op.list not in meta.lists:
            meta.lists.append(op.list)
        elif op.kind == "create_field" and op.field:
            meta.fields[op.field] = op.field_type or "text"  # type: ignore[assignment]
        self._dirty = True
        return Outcome(True)

    def _record_op(self, kind: str, op: Op) -> Outcome:
        assert op.email is not None
        lines = self._read()
        position = self._index.get(op.email)
        if position is None:
            if kind not in CREATING:
                return Outcome(False, "no such contact")
            obj: dict[str, Any] = {"email": op.email, "opted_out": False, "lists": []}
            if self._context.side == "crm" and op.record_kind:
                obj["kind"] = op.record_kind
        else:
            obj = jsonl.decode_object(lines[position])
        _EDITS[kind](obj, op, self._context.side)
        line = jsonl.encode_object(obj)
        if position is None:
            self._index[op.email] = len(lines)
            lines.append(line)
        else:
            lines[position] = line
        self._dirty = True
        return Outcome(True, fingerprint=jsonl.fingerprint(line))

    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        return JobStatus("unknown", True, detail="the files adapter runs no jobs")

    async def flush(self) -> None:
        if not self._dirty:
            return
        if self._lines is not None:
            jsonl.write_atomically(self._path, self._lines)
        if self._meta is not None:
            jsonl.write_atomically(self._meta_path, [msgspec.json.encode(self._meta)])
        self._dirty = False

    async def aclose(self) -> None:
        self._lines = None
        self._index = {}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _split_deletions(lines: list[bytes]) -> tuple[list[bytes], list[str]]:
    kept, deleted = [], []
    for line in lines:
        try:
            obj = jsonl.decode_object(line)
        except ValueError:
            kept.append(line)  # the engine reports it as unreadable
            continue
        if obj.get("deleted") is True and isinstance(obj.get("email"), str):
            deleted.append(obj["email"])
        else:
            kept.append(line)
    return kept, deleted


def _set_fields(obj: dict[str, Any], op: Op, side: str) -> None:
    for name, change in op.changes.items():
        if name == "opted_out":
            obj["opted_out"] = bool(change.new)
            obj.pop("opt_out_reason", None)
        elif change.new is None:
            obj.pop(name, None)
        else:
            obj[name] = change.new


def _lists(obj: dict[str, Any]) -> list[str]:
    lists = obj.get("lists")
    if not isinstance(lists, list):
        lists = []
        obj["lists"] = lists
    return lists


def _add_member(obj: dict[str, Any], op: Op, side: str) -> None:
    lists = _lists(obj)
    if op.list is not None and op.list not in lists:
        lists.append(op.list)


def _remove_member(obj: dict[str, Any], op: Op, side: str) -> None:
    obj["lists"] = [name for name in _lists(obj) if name != op.list]


def _opt_out(obj: dict[str, Any], op: Op, side: str) -> None:
    obj["opted_out"] = True
    if side == "esp":
        obj.setdefault("opt_out_reason", "crm")


def _undeliverable(obj: dict[str, Any], op: Op, side: str) -> None:
    obj["undeliverable"] = True


def _activity(obj: dict[str, Any], op: Op, side: str) -> None:
    entries = obj.setdefault("activity", [])
    entries.append({"reason": op.reason, **{k: c.new for k, c in op.changes.items()}})


_EDITS: dict[str, Callable[[dict[str, Any], Op, str], None]] = {
    "upsert_contact": _set_fields,
    "update_crm": _set_fields,
    "add_member": _add_member,
    "remove_member": _remove_member,
    "opt_out_esp": _opt_out,
    "opt_out_crm": _opt_out,
    "mark_undeliverable_crm": _undeliverable,
    "record_activity": _activity,
}
