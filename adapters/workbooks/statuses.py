"""Campaign member statuses: reading them, and naming the status each membership holds.

A membership carries only `campaign_membership_status_id`. The status itself is a record of
`crm/campaign_membership_status` (`shared/reference/workbooks-api.md` §6, "Member status"), one set
per campaign, with a `status` (Potential, Booked, Cancelled...) and a `name` (free text such as
Interested or Not Interested; some mandatory statuses have none). The rules'
`campaigns.unsubscribed_statuses` compare against one text per membership, and which of the two
attributes a Workbooks user means by "the status" is UNSURE in the reference, so the Workbooks
setting `member_status` chooses:

- `"name"` (the default): the names users see and give, so a campaign's own "Unsubscribed" status
  can be told from its other Cancelled ones. An unnamed status falls back to its `status`.
- `"status"`: the fixed `status` values, for databases whose statuses are told apart by those.

Decisions:
- Statuses are read once per snapshot, in one paged read with `_select_columns[]`, filtered by
  campaign with one `eq` filter listing every campaign the snapshot reports (an IN). The adapter
  does not know which campaigns the rules integrate, so it reads the statuses of all of them; there
  are a handful per campaign. Deleted statuses are read too (tombstones), for the rule below.
- An id that names no live status (a deleted status, or none at all) is the empty name: the
  membership counts as a plain, subscribed one, and the snapshot goes on.
- A renamed (or deleted) status changes what every membership holding it means, although no
  membership changed. A full snapshot resolves every membership with the status as it is now. An
  incremental snapshot also re-reads the memberships of every status updated since its cursor, and
  so the records holding them, which come back with the new name: renaming a campaign's status to
  one the rules list as unsubscribed takes its members off the list at the next incremental sync.
  This costs no call while no status changes. `version()` does not look at statuses: a plan saved
  before a rename is still applied as it was made, and the next plan puts right the list
  memberships it got wrong (memberships only: a status never opts anyone out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from adapters.workbooks.client import Filter, WorkbooksClient
from adapters.workbooks.wire import parse_time

STATUSES = "crm/campaign_membership_status"
STATUS_ID = "campaign_membership_status_id"
COLUMNS = ("marketing_campaign_id", "status", "name", "updated_at", "is_deleted")
Attribute = Literal["name", "status"]


@dataclass(frozen=True)
class Statuses:
    """The member statuses of a snapshot's campaigns: the text each id stands for, and which changed."""

    names: Mapping[int, str] = field(default_factory=dict)
    changed: frozenset[int] = frozenset()  # ids updated (renamed, deleted) at or after the cursor

    def of(self, member: Mapping[str, Any]) -> str:
        """The status text of a membership; empty when its status id names no live status."""
        status_id = member.get(STATUS_ID)
        return self.names.get(status_id, "") if isinstance(status_id, int) else ""


def text_of(record: Mapping[str, Any], attribute: Attribute) -> str:
    """What the rules compare for one status record; an unnamed status falls back to its `status`."""
    text = _text(record.get(attribute))
    if not text and attribute == "name":
        return _text(record.get("status"))
    return text


def resolved(records: Iterable[Mapping[str, Any]], attribute: Attribute, since: datetime | None) -> Statuses:
    """`Statuses` from status records as read (tombstones included); `since` is the snapshot's cursor."""
    names: dict[int, str] = {}
    changed: set[int] = set()
    for record in records:
        status_id = record["id"]
        if not record.get("is_deleted"):
            names[status_id] = text_of(record, attribute)
        if since is not None and _updated_since(record, since):
            changed.add(status_id)
    return Statuses(names, frozenset(changed))


async def read_statuses(
    api: WorkbooksClient,
    campaign_keys: Iterable[str],
    attribute: Attribute,
    since: datetime | None,
    *,
    page_size: int,
) -> Statuses:
    """The statuses of the campaigns `campaign_keys`, in one paged read."""
    keys = sorted(set(campaign_keys), key=lambda key: (len(key), key))
    if not keys:
        return Statuses()
    filters: list[Filter] = [
        ("marketing_campaign_id", "eq", ",".join(keys)),
        ("is_deleted", "eq", False),  # a filter naming is_deleted shows tombstones too
        ("is_deleted", "eq", True),
    ]
    records = api.read_all(
        STATUSES, select=COLUMNS, filters=filters, match="1 AND (2 OR 3)", page_size=page_size
    )
    return resolved([record async for record in records], attribute, since)


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


def _updated_since(record: Mapping[str, Any], since: datetime) -> bool:
    text = record.get("updated_at")
    if not isinstance(text, str):
        return True  # no time to go by: re-reading its memberships is the safe side
    try:
        return parse_time(text) >= since
    except ValueError:
        return True
