"""The Constant Contact activity feed over the emulator: every tracked event once, bounce codes read as
hard or soft, totals that agree with the events, and re-reads that repeat keys rather than events."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from adapters.constantcontact.emulator_generate import SendShares
from tests.adapters.contract import SEED
from tests.adapters.test_constantcontact_contract import account, opened


@pytest.mark.asyncio
async def test_the_feed_gives_each_tracked_event_once_with_its_campaign_lists_and_totals() -> None:
    state = account(SEED)
    spring = next(x for x in state.lists.values() if x.name == "Spring")
    for n in range(40):
        state.add_contact(f"p{n:02}@example.com").lists[spring.id] = None
    campaign = state.add_campaign(
        "Spring launch", list_ids=[spring.id], sent_at=state.now() - timedelta(hours=2)
    )
    state.generate_activity(campaign.id, SendShares(bounce=0.3, open=0.8, click=0.5, optout=0.1))
    async with opened(state) as adapter:
        feed = await adapter.activity(None, state.now() - timedelta(days=30))
        again = await adapter.activity(feed.cursor, state.now() - timedelta(days=30))
    kinds = Counter(e.type for e in feed.events)
    tracked = Counter(t.kind for t in campaign.tracking)
    assert kinds["open"] == tracked["em_opens"] > 0 and kinds["click"] == tracked["em_clicks"] > 0
    assert kinds["bounce"] == tracked["em_bounces"] > 0 and kinds["unsubscribe"] == tracked["em_optouts"] > 0
    assert len({e.key for e in feed.events}) == len(feed.events)
    codes = {t.contact_id: t.bounce_code for t in campaign.tracking if t.kind == "em_bounces"}
    for event in (e for e in feed.events if e.type == "bounce"):
        code = codes[event.key.split(":")[2]]
        assert event.bounce == ("hard" if code in "BDS" else "soft")
    assert all(e.lists == ("Spring",) and e.campaign_name == "Spring launch" for e in feed.events)
    assert all(e.url for e in feed.events if e.type == "click")
    (totals,) = feed.totals
    assert totals.campaign == campaign.id and totals.lists == ("Spring",)
    assert (totals.opens, totals.clicks, totals.unsubscribes) == (
        kinds["open"],
        kinds["click"],
        kinds["unsubscribe"],
    )
    assert totals.sends == tracked["em_sends"]
    # The cursor overlaps the last read by a few minutes: nothing in it is older than that overlap.
    assert {e.key for e in again.events} <= {e.key for e in feed.events}


@pytest.mark.asyncio
async def test_only_events_after_the_window_start_are_read_and_old_campaigns_are_skipped() -> None:
    state = account(SEED)
    spring = next(x for x in state.lists.values() if x.name == "Spring")
    old = state.add_campaign("Old", list_ids=[spring.id], sent_at=state.now() - timedelta(days=200))
    state.generate_activity(old.id, SendShares(open=1.0))
    for event in old.tracking:
        event.at = old.sent_at
    recent = state.add_campaign("Recent", list_ids=[spring.id], sent_at=state.now() - timedelta(days=2))
    state.generate_activity(recent.id, SendShares(bounce=0.0, open=1.0, click=0.0, optout=0.0))
    async with opened(state) as adapter:
        feed = await adapter.activity(None, state.now() - timedelta(days=10))
        nothing = await adapter.activity(None, state.now() + timedelta(minutes=1))
    assert {e.campaign for e in feed.events} == {recent.id} and feed.events
    assert nothing.events == () and nothing.totals == ()
