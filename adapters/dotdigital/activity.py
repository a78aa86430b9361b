"""The Dotdigital activity feed (``engine.activity_feed.ActivitySource``): campaign events and totals.

Split from ``adapter.py``, which owns the cursor (local UTC time at the start of a read, less the
overlap) and hands this module the window's start. Why the read looks the way it does:

- v2 has no account-wide "events since" feed, so the read finds the campaigns with activity since the
  window start and reads, per campaign: its address books (the events' ``lists``), its opens and clicks
  since then (one event each), its recipients with activity since then (the ``hardBounced``,
  ``softBounced`` and ``unsubscribed`` flags, v2's only per-campaign source of bounces and opt-outs), and
  its summary (the totals).
- Keys are made only of what the vendor returns, so one event has one key on every read:
  ``dotdigital:{campaign}:{contact id}:open:{time}``, ``...:click:{time}:{xxh3 of the url}``,
  ``...:bounce`` and ``...:unsubscribe`` (a recipient bounces or opts out of a campaign once). Times are
  UTC ISO. Opens (or clicks on one url) of one contact at the same time are told apart by ``#2``,
  ``#3``... in the order read: windows start on whole seconds, so such twins are always read together.
- A flag has no date of its own in v2. A bounce is dated ``dateSent`` (a bounce answers the send); an
  unsubscribe ``dateLastOpened`` (the link is in an email the contact opened), else ``dateSent``; with
  neither, the start of the read. Such a date may precede the window: the flag is new, not the date.
- Totals are the summary's ``numTotal*`` counters (HTML and plain text together) and count every open and
  click, not unique ones, so that a campaign's totals agree with the events its feed gives over time;
  bounces are hard plus soft.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import xxhash

from adapters.dotdigital import wire
from adapters.dotdigital.client import DotdigitalClient
from engine.activity_feed import ActivityEvent, ActivityFeed, CampaignTotals
from engine.ruleset import EventType


async def read_activity(api: DotdigitalClient, after: datetime, started: datetime) -> ActivityFeed:
    """Events since ``after`` of every campaign that has any, with its totals; the cursor is ``started``."""
    events: list[ActivityEvent] = []
    totals: list[CampaignTotals] = []
    read: set[int] = set()
    async for campaign in api.campaigns_with_activity_since(after):
        if campaign.id in read:  # a page shifted under us: the campaign is read already
            continue
        read.add(campaign.id)
        lists = tuple(sorted({book.name async for book in api.campaign_address_books(campaign.id)}))
        feed = _CampaignEvents(campaign, lists, started)
        async for opened in api.campaign_opens(campaign.id, after):
            if opened.date_opened is not None:  # undated, it could not be keyed; v2 always dates it
                feed.add(opened.contact_id, opened.email, "open", opened.date_opened)
        async for click in api.campaign_clicks(campaign.id, after):
            if click.date_clicked is not None:
                url = xxhash.xxh3_64_hexdigest(click.url.encode())
                feed.add(click.contact_id, click.email, "click", click.date_clicked, url, url=click.url)
        async for recipient in api.campaign_activities(campaign.id, after):
            feed.flags(recipient)
        events += feed.events
        totals.append(_totals(campaign.id, lists, await api.campaign_summary(campaign.id)))
    return ActivityFeed(tuple(events), tuple(totals), started.isoformat())


class _CampaignEvents:
    """One campaign's events as they are read: its name and lists on each, and keys unique in the read."""

    def __init__(self, campaign: wire.ApiCampaign, lists: tuple[str, ...], started: datetime) -> None:
        self._campaign, self._lists, self._started = campaign, lists, started
        self._given: Counter[str] = Counter()
        self.events: list[ActivityEvent] = []

    def add(
        self,
        contact_id: int,
        email: str,
        kind: EventType,
        at: datetime,
        *detail: str,
        url: str | None = None,
        bounce: str | None = None,
    ) -> None:
        """One event; a dated one (open, click) repeats with ``#n``, an undated one (flag) only once."""
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        dated = kind in ("open", "click")
        parts = (str(self._campaign.id), str(contact_id), kind, *((_iso(at),) if dated else ()), *detail)
        key = ":".join(("dotdigital", *parts))
        self._given[key] += 1
        if self._given[key] > 1:
            if not dated:
                return
            key = f"{key}#{self._given[key]}"
        self.events.append(
            ActivityEvent(
                key=key,
                email=email.strip().lower(),
                type=kind,
                at=at,
                campaign=str(self._campaign.id),
                campaign_name=self._campaign.name,
                lists=self._lists,
                url=url,
                bounce=bounce,
            )
        )

    def flags(self, recipient: wire.ApiCampaignContactSummary) -> None:
        """The bounce and the unsubscribe a recipient's activity row flags, dated as the module says."""
        sent = recipient.date_sent or self._started
        if recipient.hard_bounced or recipient.soft_bounced:
            kind = "hard" if recipient.hard_bounced else "soft"
            self.add(recipient.contact_id, recipient.email, "bounce", sent, bounce=kind)
        if recipient.unsubscribed:
            at = recipient.date_last_opened or sent
            self.add(recipient.contact_id, recipient.email, "unsubscribe", at)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _totals(campaign_id: int, lists: tuple[str, ...], summary: wire.ApiCampaignSummary) -> CampaignTotals:
    return CampaignTotals(
        campaign=str(campaign_id),
        lists=lists,
        sends=summary.num_total_sent,
        opens=summary.num_total_opens,
        clicks=summary.num_total_clicks,
        bounces=summary.num_total_hard_bounces + summary.num_total_soft_bounces,
        unsubscribes=summary.num_total_unsubscribes,
    )
