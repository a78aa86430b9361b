"""Planning the activity process: read the ESP's activity feed and make the CRM ops for it.

The feed is read from the cursor stored after the last applied activity plan (or, the first time,
from the rules' `activity.backfill` ago); the contacts' base lists come from the store. The pure
part is `engine.activity_ops`; this module does the reading and keeps the state in the store's
cursors table, as JSON under the ESP side's `activity` stream.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec

from engine.activity_feed import ActivitySource, ActivityState
from engine.activity_ops import ActivityPlan, activity_ops, settled
from engine.lists import ListNamer
from engine.records import Campaign, Record
from engine.ruleset import duration_seconds
from engine.session import Sync

ACTIVITY_STREAM = "activity"


async def plan_activity(
    sync: Sync,
    campaigns: Sequence[Campaign],
    marked: Collection[str] = (),
    settling: Mapping[str, Record | None] | None = None,
) -> ActivityPlan | None:
    """The activity ops since the stored cursor; None when the ESP adapter reports no activity.
    `marked`: contacts the rest of the plan already marks undeliverable in the CRM. `settling`: the
    records the rest of the plan brings contacts to (its targets). A contact listsync syncs is one
    with a base or one of those: on a first sync none has a base yet, and the cursor moves past
    every event read, so events of the contacts it is syncing must not wait for their base."""
    if not sync.esp_capabilities.activity:
        return None
    rules = sync.rules
    stored = await load_activity_state(sync)
    since = datetime.now(UTC) - timedelta(seconds=duration_seconds(rules.activity.backfill))
    feed = await cast(ActivitySource, sync.esp).activity(stored.cursor, since)
    emails = {event.email for event in feed.events}
    synced = {
        email: record
        for email, (record, _, _) in (await sync.store.load_base_rows(sync.name, emails)).items()
    }
    synced.update((email, record) for email, record in (settling or {}).items() if email in emails and record)
    member_lists = {email: record.lists for email, record in synced.items()}
    undeliverable = None
    if rules.consent.undeliverable_to_crm:
        undeliverable = {*marked, *(email for email, record in synced.items() if record.undeliverable)}
    campaign_of_list = ListNamer(rules, campaigns).campaign_of_list
    return activity_ops(
        feed, rules.activity, campaign_of_list, member_lists, stored, undeliverable=undeliverable
    )


async def load_activity_state(sync: Sync) -> ActivityState:
    stored = await sync.store.get_cursor(sync.name, "esp", ACTIVITY_STREAM)
    return ActivityState() if stored is None else msgspec.json.decode(stored, type=ActivityState)


async def store_activity_state(sync: Sync, planned: ActivityState, failed: Iterable[str]) -> None:
    """Keep the planned state, except for the CRM campaigns whose totals were not written."""
    state = settled(planned, await load_activity_state(sync), failed)
    await sync.store.set_cursor(sync.name, "esp", ACTIVITY_STREAM, msgspec.json.encode(state).decode())
