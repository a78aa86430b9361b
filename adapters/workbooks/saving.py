"""Saving field updates to Workbooks records, with one retry when a record went stale.

It exists apart from the adapter so the optimistic-locking rule reads in one place: every update
carries the `lock_version` last seen; a stale one reloads the record's version and retries once; a
record deleted meanwhile, or one that is still changing on the retry, gets a reason instead. The
adapter finds the records (`Ref`: people and leads, or campaigns for their totals) and builds the
fields; this module only writes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.wire import Value, WriteObject, WriteResult

# Read `select` of the records of `controller` whose `column` is one of `values`, as the adapter does.
Reader = Callable[[str, str, Sequence[str], Sequence[str]], AsyncIterator[dict[str, Any]]]


class Table(Protocol):
    """A Workbooks record type: what the engine calls it, and its controller path."""

    @property
    def name(self) -> str: ...

    @property
    def controller(self) -> str: ...


T = TypeVar("T", bound=Table)


@dataclass
class Ref(Generic[T]):
    """One record a write may target, with the lock version last seen."""

    kind: T
    id: int
    lock_version: int


Item = tuple[Ref[Any], dict[str, Value]]


async def save(api: Callable[[], WorkbooksClient], read: Reader, items: Sequence[Item]) -> list[str | None]:
    """Update each record; None where saved, else why not. A stale record is reloaded and retried once."""
    errors: list[str | None] = [None] * len(items)
    for kind in dict.fromkeys(ref.kind for ref, _ in items):
        indexes = [i for i, (ref, _) in enumerate(items) if ref.kind is kind]
        stale = await _put(api, kind, [items[i] for i in indexes], indexes, errors)
        if not stale:
            continue
        ids = [str(items[i][0].id) for i in stale]
        fresh = {
            record["id"]: int(record.get("lock_version") or 0)
            async for record in read(kind.controller, "id", ids, ("id",))
        }
        retry = []
        for index in stale:
            ref = items[index][0]
            if ref.id in fresh:
                ref.lock_version = fresh[ref.id]
                retry.append(index)
            else:
                errors[index] = f"Workbooks {kind.name} {ref.id} was deleted while listsync wrote to it"
        still = await _put(api, kind, [items[i] for i in retry], retry, errors)
        for index in still:
            errors[index] = f"Workbooks {kind.name} {items[index][0].id} kept changing; retried once"
    return errors


async def _put(
    api: Callable[[], WorkbooksClient],
    kind: Table,
    items: Sequence[Item],
    indexes: Sequence[int],
    errors: list[str | None],
) -> list[int]:
    """Write `items`, filling `errors` at `indexes`; the indexes that were stale."""
    if not items:
        return []
    objects = [WriteObject.update(ref.id, ref.lock_version, fields) for ref, fields in items]
    results = await api().write(kind.controller, objects)
    stale = []
    for index, (ref, _), result in zip(indexes, items, results, strict=True):
        if result.ok:
            ref.lock_version = _next_lock(result, ref.lock_version)
            errors[index] = None
        elif result.stale:
            stale.append(index)
        else:
            errors[index] = f"Workbooks refused {kind.name} {ref.id}: {result.reason}"
    return stale


def _next_lock(result: WriteResult, seen: int) -> int:
    return result.lock_version if result.lock_version is not None else seen + 1


__all__ = ["Item", "Reader", "Ref", "save"]
