"""The Mailchimp activity feed over the emulator: events and totals as the account recorded them.

The account's clock is a hand-moved one that starts an hour behind the real time, so the generated
activity lies before the adapter's first cursor (local UTC time) and activity made after moving the clock
on an hour lies after it, as a real account's would.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from adapters.mailchimp.emulator_data import Campaign, iso
from adapters.mailchimp.emulator_seeding import ActivityShares, generate
from adapters.mailchimp.emulator_state import MailchimpState
from engine.activity_feed import ActivityEvent
from tests.adapters.test_mailchimp_contract import opened
from tests.support import Clock

EVER = datetime(2000, 1, 1, tzinfo=UTC)
SHARES = ActivityShares(hard_bounce=0.05, soft_bounce=0.05, open=0.6, click=0.5, unsubscribe=0.1)
Row = tuple[str, str, str, str, str | None, str | None]


def account(clock: Clock) -> tuple[MailchimpState, str]:
    """One audience with three tags, two campaigns sent to two of them three days ago, and activity."""
    state = MailchimpState(clock=clock, seed=3, started_at=datetime.now(UTC) - timedelta(hours=1))
    audience = generate(state, seed=7, members=300, tags=3, campaigns=0)
    tags = list(audience.segments.values())
    for number, tag in enumerate(tags[:2]):
        sent = state.now() - timedelta(days=3)
        campaign = state.add_campaign(audience.id, f"Campaign {number}", segment_id=tag.id, sent_at=sent)
        state.generate_activity(campaign.id, SHARES)
    state.add_campaign(audience.id, "To everyone", sent_at=state.now() - timedelta(days=2))
    return state, audience.name


def recorded(campaign: Campaign) -> Counter[Row]:
    rows: Counter[Row] = Counter()
    for r in campaign.recipients.values():
        email = r.email.lower()
        rows.update((campaign.id, email, "open", iso(w), None, None) for w in r.opens)
        rows.update((campaign.id, email, "click", iso(w), url, None) for url, w in r.clicks)
        if r.bounce:
            rows[(campaign.id, email, "bounce", iso(r.bounce[1]), None, r.bounce[0])] += 1
        if r.unsubscribed:
            rows[(campaign.id, email, "unsubscribe", iso(r.unsubscribed[1]), None, None)] += 1
    return rows


def rows_of(events: tuple[ActivityEvent, ...]) -> Counter[Row]:
    return Counter((e.campaign, e.email, e.type, iso(e.at), e.url, e.bounce) for e in events)


@pytest.mark.asyncio
async def test_the_feed_gives_every_event_once_with_stable_keys_and_the_totals() -> None:
    clock = Clock()
    state, name = account(clock)
    async with opened(state, audience=name) as adapter:
        feed = await adapter.activity(None, EVER)
        again = await adapter.activity(None, EVER)
        quiet = await adapter.activity(feed.cursor, EVER)
        before = sum((recorded(c) for c in state.campaigns.values()), Counter[Row]())
        clock.now += 3600  # an hour on: the account's clock meets the real one
        (audience,) = state.audiences.values()
        tag = next(iter(audience.segments.values()))
        fresh = state.add_campaign(audience.id, "Fresh", segment_id=tag.id)
        state.generate_activity(fresh.id, SHARES)
        later = await adapter.activity(feed.cursor, EVER)
    assert rows_of(feed.events) == before and sum(before.values()) > 100
    assert rows_of(later.events) == recorded(fresh) and later.events
    assert [e.key for e in feed.events] == [e.key for e in again.events]
    assert len({e.key for e in feed.events}) == len(feed.events)
    assert not quiet.events
    for event in feed.events:
        sent_to = state.campaigns[event.campaign].segment_id
        assert event.lists == (audience.segments[sent_to or 0].name,)
    by_campaign = {t.campaign: t for t in feed.totals}
    assert set(by_campaign) == {e.campaign for e in feed.events} and len(by_campaign) == 2
    for campaign_id, totals in by_campaign.items():
        counted = Counter(e.type for e in feed.events if e.campaign == campaign_id)
        assert (totals.opens, totals.clicks, totals.bounces, totals.unsubscribes) == (
            counted["open"], counted["click"], counted["bounce"], counted["unsubscribe"],
        )  # fmt: skip
        assert totals.sends == len(state.campaigns[campaign_id].recipients)
