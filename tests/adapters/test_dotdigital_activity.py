"""The Dotdigital activity feed over the emulator: events and totals as the account recorded them.

The account's clock is a hand-moved one that starts an hour behind the real time, so the generated
activity lies before the adapter's first cursor (local UTC time) and activity made after moving the clock
on an hour lies after it, as a real account's would; an event dated a little before a cursor (the
vendor's clock behind ours) is what the cursor's overlap is for.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from adapters.dotdigital.adapter import DotdigitalAdapter
from adapters.dotdigital.emulator_data import ActivityShares, Campaign, generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.activity_feed import ActivityEvent, ActivityFeed, CampaignTotals
from tests.adapters.test_dotdigital_contract import REGIONAL, opened
from tests.support import Clock

EVER = datetime(2000, 1, 1, tzinfo=UTC)
SHARES = ActivityShares(hard_bounce=0.05, soft_bounce=0.05, open=0.6, click=0.5, unsubscribe=0.1)
Row = tuple[str, str, str, datetime, str | None, str | None]


def account(clock: Clock) -> DotdigitalState:
    """Three books and two campaigns sent three days ago, one to two books, with their activity."""
    started = datetime.now(UTC) - timedelta(hours=1)
    state = DotdigitalState(Knobs(api_endpoint=REGIONAL), clock=clock, seed=3, started_at=started)
    generate(state, seed=7, contacts=160, address_books=3, campaigns=0)
    books = list(state.address_books.values())
    for number, sent_to in enumerate(([books[0], books[1]], [books[2]])):
        campaign = state.add_campaign(
            f"Campaign {number}", book_ids=[b.id for b in sent_to], sent_at=state.now() - timedelta(days=3)
        )
        state.generate_activity(campaign.id, SHARES)
    return state


def recorded(campaign: Campaign) -> Counter[Row]:
    """The events the emulator recorded for ``campaign``, dated to the second as v2 renders them."""
    rows: Counter[Row] = Counter()
    ident = str(campaign.id)
    for act in campaign.activity.values():
        email = act.email.strip().lower()
        rows.update((ident, email, "open", _second(when), None, None) for when in act.opens)
        rows.update((ident, email, "click", _second(when), url, None) for url, when in act.clicks)
        if act.hard_bounced or act.soft_bounced:
            kind = "hard" if act.hard_bounced else "soft"
            rows[(ident, email, "bounce", _second(campaign.date_sent), None, kind)] += 1
        if act.unsubscribed:
            last_opened = (act.opens or [campaign.date_sent])[-1]
            rows[(ident, email, "unsubscribe", _second(last_opened), None, None)] += 1
    return rows


def rows_of(events: tuple[ActivityEvent, ...] | list[ActivityEvent]) -> Counter[Row]:
    return Counter((e.campaign, e.email, e.type, e.at, e.url, e.bounce) for e in events)


def expected_totals(state: DotdigitalState, campaign: Campaign) -> CampaignTotals:
    acts = campaign.activity.values()
    return CampaignTotals(
        campaign=str(campaign.id),
        lists=tuple(sorted(state.address_books[b].name for b in campaign.book_ids)),
        sends=len(acts),
        opens=sum(len(a.opens) for a in acts),
        clicks=sum(len(a.clicks) for a in acts),
        bounces=sum(a.hard_bounced or a.soft_bounced for a in acts),
        unsubscribes=sum(a.unsubscribed for a in acts),
    )


def by_key(feed: ActivityFeed) -> dict[str, ActivityEvent]:
    keys = {event.key: event for event in feed.events}
    assert len(keys) == len(feed.events), "keys are unique"
    return keys


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def test_the_adapter_says_it_reports_activity() -> None:
    settings = {"api_user": "u", "password": {"env": "X"}}
    assert DotdigitalAdapter.capabilities(settings, "esp").activity is True


@pytest.mark.asyncio
async def test_a_first_read_gives_every_recorded_event_and_each_campaigns_totals() -> None:
    state = account(Clock())
    async with opened(state) as adapter:
        first = await adapter.activity(None, EVER)
        again = await adapter.activity(None, EVER)
        later = await adapter.activity(None, datetime.now(UTC))
    campaigns = list(state.campaigns.values())
    assert rows_of(first.events) == sum((recorded(c) for c in campaigns), Counter())
    assert {e.type for e in first.events} == {"open", "click", "bounce", "unsubscribe"}
    assert {e.bounce for e in first.events if e.type == "bounce"} == {"hard", "soft"}
    keys = by_key(first)
    assert keys == by_key(again) and first.events == again.events
    assert set(first.totals) == {expected_totals(state, c) for c in campaigns}
    for event in first.events:
        campaign = state.campaigns[int(event.campaign)]
        assert event.campaign_name == campaign.name
        assert event.lists == expected_totals(state, campaign).lists
        assert event.key.startswith(f"dotdigital:{campaign.id}:{state.by_email[event.email]}:{event.type}")
    assert datetime.fromisoformat(first.cursor) > datetime.now(UTC) - timedelta(minutes=1)
    assert later.events == () and later.totals == ()  # all the activity is before `since`


@pytest.mark.asyncio
async def test_a_read_from_the_cursor_gives_the_new_events_and_the_overlap_only_known_keys() -> None:
    clock = Clock()
    state = account(clock)
    old = next(iter(state.campaigns.values()))
    reader = next(a for a in old.activity.values() if a.opens and not a.unsubscribed and not a.clicks)
    async with opened(state) as adapter:
        first = await adapter.activity(None, EVER)
        clock.now += 3600 + 60  # a minute after the first read, in the emulator's time
        # An open the vendor dates two minutes before the first read (its clock behind ours): the
        # cursor's overlap is what finds it.
        reader.opens.append(datetime.fromisoformat(first.cursor) - timedelta(minutes=2))
        reader.last_event = reader.opens[-1]
        books = list(state.address_books)
        new = state.add_campaign("Follow-up", book_ids=books[:1])
        assert state.generate_activity(new.id, SHARES) > 0
        second = await adapter.activity(first.cursor, EVER)
        third = await adapter.activity(second.cursor, EVER)
    before, after = by_key(first), by_key(second)
    added = [event for key, event in after.items() if key not in before]
    reopened = (str(old.id), reader.email.lower(), "open", _second(reader.opens[-1]), None, None)
    assert rows_of(added) == recorded(new) + Counter([reopened])
    assert any(event.key.endswith("#2") for event in added), "same-second opens are told apart"
    assert {t.campaign for t in second.totals} == {str(old.id), str(new.id)}  # not the other one
    assert set(second.totals) == {expected_totals(state, old), expected_totals(state, new)}
    assert all(after[event.key] == event for event in third.events)
    assert rows_of(third.events)[reopened] == 1  # the overlap reads it again, under the same key


@pytest.mark.asyncio
async def test_a_campaign_with_more_than_a_page_of_opens_is_read_whole() -> None:
    state = account(Clock())
    campaign = next(iter(state.campaigns.values()))
    reader = next(iter(campaign.activity.values()))
    start = state.now() - timedelta(hours=2)
    reader.opens = sorted([*reader.opens, *(start + timedelta(seconds=n) for n in range(1200))])
    async with opened(state) as adapter:
        feed = await adapter.activity(None, EVER)
    mine = (str(campaign.id), reader.email.lower(), "open")
    opens = [e for e in feed.events if (e.campaign, e.email, e.type) == mine]
    assert len(opens) == len(reader.opens) > 1000
    pages = [path for _, path, _ in state.calls if path.startswith(f"/v2/campaigns/{campaign.id}/opens")]
    assert len(pages) == 3  # two pages, then the first again to confirm the end (offset_paging)
