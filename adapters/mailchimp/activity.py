"""The Mailchimp activity feed (``engine.activity_feed.ActivitySource``): campaign events and totals.

Split from ``adapter.py``, which owns the cursor (local UTC time at the start of a read, less an overlap)
and hands this module the window's start. Why the read looks the way it does:

- 3.0 has no account-wide "events since" feed and no "campaigns with activity since", so the read takes
  the audience's campaigns sent within ``window`` before the window start (activity comes in the days
  after a send) and reads, per campaign: its email activity since the window start (opens, clicks and
  bounces, one event each) and its unsubscribes (that list takes no ``since``, so it is filtered here).
  A campaign with events also gets its report's totals.
- A campaign's ``lists`` are the tags it was sent to: its saved segment, and any static-segment
  conditions. A campaign sent to the whole audience has none, so the engine gives it no CRM campaign.
- Keys are made only of what the vendor returns, so one event has one key on every read:
  ``mailchimp:{campaign}:{subscriber hash}:open:{time}``, ``...:click:{time}:{xxh3 of the url}``,
  ``...:bounce:{time}`` and ``...:unsubscribe`` (a member unsubscribes from a campaign once). Times are
  UTC ISO to the second, as Mailchimp gives them; twins at the same second are told apart by ``#2``,
  ``#3``... in the order read, and windows start on whole seconds, so twins are always read together.
- Totals count every open and click (``opens_total``, ``clicks_total``), not unique ones, so that they
  agree with the events over time; bounces are hard plus soft plus syntax errors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import xxhash

from adapters.mailchimp import wire
from adapters.mailchimp.client import MailchimpClient
from engine.activity_feed import ActivityEvent, ActivityFeed, CampaignTotals
from engine.ruleset import EventType


async def read_activity(
    api: MailchimpClient,
    list_id: str,
    after: datetime,
    started: datetime,
    *,
    window: timedelta,
    tag_names: Mapping[int, str],
) -> ActivityFeed:
    """Events since ``after`` of the audience's recent campaigns, with totals; the cursor is ``started``."""
    events: list[ActivityEvent] = []
    totals: list[CampaignTotals] = []
    # One per id: a record that moved while its list was read comes twice (adapters.offset_paging),
    # and read twice, a campaign's or a recipient's events would be given twice under new keys.
    campaigns = {c.id: c for c in await api.campaigns(list_id, sent_since=after - window)}
    for campaign in campaigns.values():
        lists = _lists(campaign, tag_names)
        keys = _Keys(campaign, lists)
        recipients = {r.email_id: r for r in await api.email_activity(campaign.id, since=after)}
        for recipient in recipients.values():
            for act in recipient.activity:
                if act.action == "click":
                    url = xxhash.xxh3_64_hexdigest(act.url.encode())
                    keys.add(recipient, "click", act.timestamp, url, url=act.url)
                elif act.action == "bounce":
                    keys.add(recipient, "bounce", act.timestamp, bounce=act.type or "soft")
                elif act.action == "open":
                    keys.add(recipient, "open", act.timestamp)
        for gone in await api.unsubscribes(campaign.id):
            if _utc(gone.timestamp) >= after:
                keys.add(gone, "unsubscribe", gone.timestamp)
        if keys.events:
            events += keys.events
            totals.append(_totals(campaign.id, lists, await api.report(campaign.id)))
    return ActivityFeed(tuple(events), tuple(totals), started.isoformat())


class _Keys:
    """One campaign's events as they are read, with keys unique in the read."""

    def __init__(self, campaign: wire.Campaign, lists: tuple[str, ...]) -> None:
        self._campaign, self._lists = campaign, lists
        self._given: Counter[str] = Counter()
        self.events: list[ActivityEvent] = []

    def add(
        self,
        who: wire.EmailActivity | wire.Unsubscribe,
        kind: EventType,
        at: datetime,
        *detail: str,
        url: str | None = None,
        bounce: str | None = None,
    ) -> None:
        at = _utc(at)
        stamp = () if kind == "unsubscribe" else (at.isoformat().replace("+00:00", "Z"),)
        key = ":".join(("mailchimp", self._campaign.id, who.email_id, kind, *stamp, *detail))
        self._given[key] += 1
        if self._given[key] > 1:
            if kind == "unsubscribe":
                return
            key = f"{key}#{self._given[key]}"
        name = self._campaign.settings.title or self._campaign.settings.subject_line or self._campaign.id
        self.events.append(
            ActivityEvent(
                key=key, email=who.email_address.strip().lower(), type=kind, at=at,
                campaign=self._campaign.id, campaign_name=name, lists=self._lists, url=url, bounce=bounce,
            )
        )  # fmt: skip


def _lists(campaign: wire.Campaign, tag_names: Mapping[int, str]) -> tuple[str, ...]:
    """The tags a campaign was sent to: its saved segment and any static-segment conditions."""
    options = campaign.recipients.segment_opts
    ids = [str(options.saved_segment_id)]
    ids += [str(c.get("value")) for c in options.conditions if c.get("condition_type") == "StaticSegment"]
    names = {tag_names[int(i)] for i in ids if i.isdigit() and int(i) in tag_names}
    return tuple(sorted(names))


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def _totals(campaign_id: str, lists: tuple[str, ...], report: wire.Report) -> CampaignTotals:
    bounces = report.bounces
    return CampaignTotals(
        campaign=campaign_id,
        lists=lists,
        sends=report.emails_sent,
        opens=report.opens.opens_total,
        clicks=report.clicks.clicks_total,
        bounces=bounces.hard_bounces + bounces.soft_bounces + bounces.syntax_errors,
        unsubscribes=report.unsubscribed,
    )
