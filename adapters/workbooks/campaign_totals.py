"""Campaign totals on Workbooks: a `record_activity` op without an email sets fields of a campaign.

The engine sends the ESP's totals for a CRM campaign (sends, opens, clicks, bounces, unsubscribes)
as one op naming the campaign in `list` and the campaign fields the rules chose in `changes`. They
are plain updates of the campaign record, with the same optimistic locking as any other save
(`adapters.workbooks.saving`); setting a total to the value it has already is harmless, so a replay
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adapters.workbooks import rows
from adapters.workbooks.activities import Campaigns, campaign_id
from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.saving import Item, Reader, Ref, save
from adapters.workbooks.wire import Value
from engine.contract import Outcome
from engine.plans import Op


@dataclass(frozen=True)
class _Table:
    name: str
    controller: str


CAMPAIGN = _Table("campaign", rows.CAMPAIGNS)


async def record_totals(
    api: Callable[[], WorkbooksClient], read: Reader, campaigns: Campaigns, ops: Sequence[Op]
) -> list[Outcome]:
    """Write each op's totals onto its campaign; an outcome per op."""
    outcomes: list[Outcome | None] = [None] * len(ops)
    found: dict[int, int] = {}
    for index, op in enumerate(ops):
        key = await campaign_id(campaigns, op.list)
        if isinstance(key, str):
            outcomes[index] = Outcome(False, key)
        else:
            found[index] = key
    locks = {
        int(record["id"]): int(record.get("lock_version") or 0)
        async for record in read(
            rows.CAMPAIGNS, "id", sorted({str(k) for k in found.values()}), ("id", "lock_version")
        )
    }
    items: list[tuple[int, Item]] = []
    for index, key in found.items():
        if key not in locks:
            outcomes[index] = Outcome(False, f"Workbooks campaign {key} no longer exists")
            continue
        fields: dict[str, Value] = {name: change.new for name, change in ops[index].changes.items()}
        items.append((index, (Ref(CAMPAIGN, key, locks[key]), fields)))
    errors = await save(api, read, [item for _, item in items])
    for (index, _), error in zip(items, errors, strict=True):
        outcomes[index] = Outcome(False, error) if error else Outcome(True)
    return [outcome or Outcome(False, "not attempted") for outcome in outcomes]
