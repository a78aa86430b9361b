"""The Constant Contact activity feed (``engine.activity_feed.ActivitySource``): campaign events and totals.

Split from ``adapter.py``, which owns the cursor (local UTC time at the start of a read, less the
overlap) and hands this module the window's start. Why the read looks the way it does:

- v3 has no account-wide "events since" feed. The read lists the email campaigns (``GET /emails``),
  skips drafts, scheduled ones and those last updated more than ``ACTIVE_FOR`` before the window (a
  choice: nearly all opens and clicks come within weeks of a send, and every campaign read costs
  calls), and per campaign reads its primary email activity (``GET /emails/{id}``) and the lists it was
  sent to (``GET /emails/activities/{id}``), both kept for the adapter's lifetime, then the activity's
  ``opens``, ``clicks``, ``bounces`` and ``optouts`` tracking reports. Those list the newest first, so
  each is read only until an event older than the window.
- Keys are made only of what the vendor returns, so one event has one key on every read:
  ``constant-contact:{campaign}:{contact}:{kind}:{time}`` (clicks add the url id); events of one contact,
  kind and second are told apart by ``#2``, ``#3``... in the order read.
- Bounce codes B (no such address), D (undeliverable) and S (suspended) are hard bounces, the engine's
  undeliverable; F (mailbox full), V (vacation), X (other) and Z (blocked) soft. The code goes with the
  event (``bounce_code``), so the CRM's activity says which it was.
- Totals come from ``/reports/stats/email_campaigns`` (ten campaigns a call): every open and click
  (``em_opens_all``, ``em_clicks_all``), so a campaign's totals agree with the events its feed gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from adapters.constantcontact import wire
from adapters.constantcontact.client import ConstantContactClient
from engine.activity_feed import ActivityEvent, ActivityFeed, CampaignTotals
from engine.ruleset import EventType

ACTIVE_FOR = timedelta(days=90)
UNSENT = frozenset({"DRAFT", "SCHEDULED"})
HARD_BOUNCES = frozenset({"B", "D", "S"})
REPORTS: tuple[tuple[str, EventType], ...] = (
    ("opens", "open"),
    ("clicks", "click"),
    ("bounces", "bounce"),
    ("optouts", "unsubscribe"),
)
STATS_PER_CALL = 10

Campaigns = dict[str, tuple[str, tuple[str, ...]]]  # campaign id -> (primary activity id, list ids)


async def read_activity(
    api: ConstantContactClient,
    after: datetime,
    started: datetime,
    list_names: dict[str, str],
    known: Campaigns,
) -> ActivityFeed:
    """Events since ``after`` of every recent campaign, with the totals of those that had any."""
    events: list[ActivityEvent] = []
    active: dict[str, tuple[str, ...]] = {}
    async for campaign in api.email_campaigns():
        if campaign.current_status.upper() in UNSENT or campaign.campaign_id in active:
            continue
        if campaign.updated_at is not None and _utc(campaign.updated_at) < after - ACTIVE_FOR:
            continue
        activity_id, list_ids = await _campaign(api, campaign.campaign_id, known)
        if not activity_id:
            continue
        lists = tuple(sorted(list_names[i] for i in list_ids if i in list_names))
        read = _Events(campaign, lists)
        for report, kind in REPORTS:
            async with aclosing(api.tracking(activity_id, report)) as feed:
                await read.take(feed, kind, after)
        if read.events:
            events += read.events
            active[campaign.campaign_id] = lists
    return ActivityFeed(tuple(events), tuple(await _totals(api, active)), started.isoformat())


async def _campaign(
    api: ConstantContactClient, campaign_id: str, known: Campaigns
) -> tuple[str, tuple[str, ...]]:
    if campaign_id not in known:
        details = await api.email_campaign(campaign_id)
        primary = next((a for a in details.campaign_activities if a.role == "primary_email"), None)
        if primary is None:
            return "", ()
        sent = await api.campaign_activity(primary.campaign_activity_id)
        known[campaign_id] = (primary.campaign_activity_id, tuple(sent.contact_list_ids))
    return known[campaign_id]


class _Events:
    """One campaign's events as they are read, with keys unique in the read."""

    def __init__(self, campaign: wire.EmailCampaign, lists: tuple[str, ...]) -> None:
        self._campaign, self._lists = campaign, lists
        self._given: Counter[str] = Counter()
        self.events: list[ActivityEvent] = []

    async def take(self, feed: AsyncIterator[wire.Tracking], kind: EventType, after: datetime) -> None:
        async for item in feed:
            at = _utc(item.created_time)
            if at < after:
                return  # newest first: the rest are older still
            self._add(item, kind, at)

    def _add(self, item: wire.Tracking, kind: EventType, at: datetime) -> None:
        stamp = at.isoformat().replace("+00:00", "Z")
        parts = ["constant-contact", self._campaign.campaign_id, item.contact_id, kind, stamp]
        if kind == "click":
            parts.append(item.url_id or "")
        key = ":".join(parts)
        self._given[key] += 1
        if self._given[key] > 1:
            key = f"{key}#{self._given[key]}"
        bounce = code = None
        if kind == "bounce":
            code = (item.bounce_code or "").upper() or None
            bounce = "hard" if code in HARD_BOUNCES else "soft"
        self.events.append(
            ActivityEvent(
                key=key,
                email=item.email_address.strip().lower(),
                type=kind,
                at=at,
                campaign=self._campaign.campaign_id,
                campaign_name=self._campaign.name,
                lists=self._lists,
                url=item.link_url if kind == "click" else None,
                bounce=bounce,
                bounce_code=code,
            )
        )


async def _totals(api: ConstantContactClient, active: dict[str, tuple[str, ...]]) -> list[CampaignTotals]:
    ids = sorted(active)
    totals = []
    for start in range(0, len(ids), STATS_PER_CALL):
        for result in await api.campaign_stats(ids[start : start + STATS_PER_CALL]):
            stats = result.stats
            totals.append(
                CampaignTotals(
                    campaign=result.campaign_id,
                    lists=active.get(result.campaign_id, ()),
                    sends=stats.em_sends,
                    opens=stats.em_opens_all,
                    clicks=stats.em_clicks_all,
                    bounces=stats.em_bounces,
                    unsubscribes=stats.em_optouts,
                )
            )
    return totals


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
