"""`record_activity` on Workbooks: each op becomes one online activity (`crm/online_activities`).

It exists apart from the adapter because activities are the one write that creates records, and it
must be idempotent: each activity carries a key (`rows.ACTIVITY_KEY`), and an op whose key is already
in Workbooks counts as done without writing again; ops sharing a key in one batch create it once. The
adapter supplies the records an op targets and the campaigns; this module builds and writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from adapters.workbooks import rows
from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.rows import Kind
from adapters.workbooks.saving import Reader, Ref
from adapters.workbooks.wire import Value, WriteObject
from engine.contract import Outcome
from engine.plans import Op
from engine.records import Campaign

Targets = Callable[[Op], list[Ref[Kind]] | str]
Campaigns = Callable[[], Awaitable[Sequence[Campaign]]]


async def record(
    api: Callable[[], WorkbooksClient],
    read: Reader,
    targets: Targets,
    campaigns: Campaigns,
    ops: Sequence[Op],
) -> list[Outcome]:
    """Create one online activity per op, unless one with its key exists (then: done already)."""
    outcomes: list[Outcome | None] = [None] * len(ops)
    planned: list[tuple[int, str, dict[str, Value]]] = []
    for index, op in enumerate(ops):
        built = await _activity(targets, campaigns, op)
        if isinstance(built, str):
            outcomes[index] = Outcome(False, built)
        else:
            planned.append((index, *built))
    keys = [key for _, key, _ in planned]
    existing = {
        str(record.get(rows.ACTIVITY_KEY))
        async for record in read(rows.ACTIVITIES, rows.ACTIVITY_KEY, keys, (rows.ACTIVITY_KEY,))
    }
    creating: dict[str, tuple[list[int], dict[str, Value]]] = {}
    for index, key, fields in planned:
        if key in existing:
            outcomes[index] = Outcome(True)
        else:
            creating.setdefault(key, ([], fields))[0].append(index)
    objects = [WriteObject.create(fields) for _, fields in creating.values()]
    results = await api().write(rows.ACTIVITIES, objects) if objects else []
    for (indexes, _), result in zip(creating.values(), results, strict=True):
        outcome = Outcome(True) if result.ok else Outcome(False, f"Workbooks refused it: {result.reason}")
        for index in indexes:
            outcomes[index] = outcome
    return [outcome or Outcome(False, "not attempted") for outcome in outcomes]


async def _activity(targets: Targets, campaigns: Campaigns, op: Op) -> tuple[str, dict[str, Value]] | str:
    refs = targets(op)
    if isinstance(refs, str):
        return refs
    campaign = await campaign_id(campaigns, op.list)
    if isinstance(campaign, str):
        return campaign
    return rows.activity_fields(op, campaign, refs[0].kind, refs[0].id)


async def campaign_id(campaigns: Campaigns, name: str | None) -> int | str:
    """The campaign an activity belongs to, by key, name or public name; or why none is found."""
    if not name:
        return "record_activity needs the campaign in `list` (its key, name or public name)"
    for campaign in await campaigns():
        if name == campaign.key or name == campaign.name or name in campaign.fields.values():
            return int(campaign.key)
    return f"no Workbooks campaign has the key or name {name!r}"


__all__ = ["Campaigns", "campaign_id", "record"]
