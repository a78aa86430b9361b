"""Turning an ESP's activity feed into CRM ops: one `record_activity` per event, and campaign totals.

Pure. An event belongs to the CRM campaigns whose ESP lists its ESP campaign was sent to; of those,
to the ones the contact is a member of (by the base), or all of them when the contact is in none any
more (an open still counts for the campaign after the person left it). Events of contacts listsync
does not sync, and of lists no integrated campaign owns, are not the CRM's business and are skipped.

A cursor may overlap the window read before (against clock skew), so the keys of the last read's
latest events (those within `RECENT` of its newest) are kept, and an event with one of them is not
planned again; an older one re-read is harmless too, as the CRM adapter writes each key once.

Hard bounces: with `undeliverable` given (the rules' `consent.undeliverable_to_crm`), a synced
contact's hard bounce also marks their CRM email undeliverable (`mark_undeliverable_crm`, once per
contact and only if it is not already), whatever `activity.record` says. Dotdigital and Mailchimp say
so on the contact too, which the diff reads; Constant Contact keeps no bounce status on a contact, so
its feed is the only place a hard bounce shows. Like an activity, a mark the CRM refuses is reported
and not planned again from the same event.

Totals: an ESP reports a campaign's totals to date, and a CRM campaign may be sent by several ESP
campaigns, so `ActivityState` keeps the latest totals of every ESP campaign seen and, per CRM
campaign, the sums last written there. A CRM campaign gets an op whenever its sums differ from what
was last written, so a write that failed is tried again on the next run, new activity or not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import msgspec

from engine.activity_feed import TOTALS, ActivityEvent, ActivityFeed, ActivityState, CampaignTotals, Sums
from engine.plans import Change, Op
from engine.ruleset import Activity
from engine.values import Value

TOTALS_REASON = "campaign totals from the ESP"
HARD_BOUNCE_REASON = "hard bounce in the ESP"
RECENT = timedelta(days=1)


@dataclass(frozen=True)
class ActivityPlan:
    ops: list[Op]
    state: ActivityState  # what to store once every totals op is confirmed


def activity_ops(
    feed: ActivityFeed,
    rules: Activity,
    campaign_of_list: Mapping[str, str],
    member_lists: Mapping[str, frozenset[str]],
    stored: ActivityState,
    *,
    undeliverable: Collection[str] | None = None,
) -> ActivityPlan:
    """The CRM ops for `feed`. `campaign_of_list`: ESP list -> CRM campaign key, for integrated
    campaigns; `member_lists`: email -> the lists of that contact's base record, for synced contacts.
    `undeliverable`: when hard bounces mark the CRM, the contacts already marked (or being marked)."""
    wanted = frozenset(rules.record)
    fresh = [e for e in feed.events if e.email in member_lists and e.key not in stored.recent]
    ops = [
        op
        for event in fresh
        if event.type in wanted
        for op in _event_ops(event, campaign_of_list, member_lists[event.email])
    ]
    if undeliverable is not None:
        ops.extend(_hard_bounce_ops(fresh, undeliverable))
    newest = max((event.at for event in feed.events), default=None)
    recent = frozenset(e.key for e in feed.events if newest is not None and e.at >= newest - RECENT)
    esp = {**stored.esp, **{totals.campaign: totals for totals in feed.totals}}
    sums = _sums(esp.values(), campaign_of_list)
    fields = rules.totals.named()
    if fields:
        ops.extend(_totals_op(key, stored.crm.get(key, {}), now, fields) for key, now in sums.items()
                   if stored.crm.get(key) != now)  # fmt: skip
    return ActivityPlan(ops, ActivityState(feed.cursor, esp, sums if fields else {}, recent))


def settled(planned: ActivityState, stored: ActivityState, failed: Iterable[str]) -> ActivityState:
    """The state to store after an apply: as planned, except the CRM campaigns whose totals op failed
    keep the sums stored before, so they are written again next time."""
    crm = dict(planned.crm)
    for key in failed:
        if key in stored.crm:
            crm[key] = stored.crm[key]
        else:
            crm.pop(key, None)
    return msgspec.structs.replace(planned, crm=crm)


def _event_ops(event: ActivityEvent, campaign_of_list: Mapping[str, str], lists: frozenset[str]) -> list[Op]:
    owned = [name for name in event.lists if name in campaign_of_list]
    campaigns = _campaign_keys([name for name in owned if name in lists] or owned, campaign_of_list)
    details: dict[str, Value] = {"type": event.type, "at": event.at.isoformat()}
    if event.url:
        details["url"] = event.url
    if event.bounce_code:
        details["bounce_code"] = event.bounce_code
    label = f"{event.bounce} bounce" if event.type == "bounce" and event.bounce else event.type
    if event.type == "bounce":
        label += _code(event)
    reason = f"{label[:1].upper()}{label[1:]}: {event.campaign_name or event.campaign}"
    return [
        Op(
            "record_activity",
            event.email,
            list=campaign,
            reason=reason,
            # With one ESP campaign feeding two CRM campaigns, each gets its own key.
            changes=_changes(
                {**details, "key": event.key if len(campaigns) == 1 else f"{event.key}@{campaign}"}
            ),
        )
        for campaign in campaigns
    ]


def _hard_bounce_ops(events: Iterable[ActivityEvent], marked: Collection[str]) -> list[Op]:
    """One `mark_undeliverable_crm` per contact with a hard bounce among `events`, unless `marked`."""
    first: dict[str, ActivityEvent] = {}
    for event in events:
        if event.type == "bounce" and event.bounce == "hard" and event.email not in marked:
            first.setdefault(event.email, event)
    return [
        Op("mark_undeliverable_crm", email, reason=f"{HARD_BOUNCE_REASON}{_code(event)} on "
           f"{event.campaign_name or event.campaign!r}")
        for email, event in first.items()
    ]  # fmt: skip


def _code(event: ActivityEvent) -> str:
    return f" (code {event.bounce_code})" if event.bounce_code else ""


def _sums(totals: Iterable[CampaignTotals], campaign_of_list: Mapping[str, str]) -> dict[str, Sums]:
    sums: dict[str, Sums] = {}
    for campaign in totals:
        for key in _campaign_keys(campaign.lists, campaign_of_list):
            into = sums.setdefault(key, dict.fromkeys(TOTALS, 0))
            for name, count in campaign.counts().items():
                into[name] += count
    return sums


def _campaign_keys(lists: Iterable[str], campaign_of_list: Mapping[str, str]) -> list[str]:
    """The CRM campaigns owning `lists`, each once, in order; lists no campaign owns are left out."""
    return list(dict.fromkeys(campaign_of_list[name] for name in lists if name in campaign_of_list))


def _totals_op(key: str, before: Sums, now: Sums, fields: Mapping[str, str]) -> Op:
    """A campaign-level `record_activity` (no email): the CRM fields named by the rules, set."""
    changes = {field: Change(before.get(total), now[total]) for total, field in fields.items()}
    return Op("record_activity", list=key, changes=changes, reason=TOTALS_REASON)


def _changes(details: Mapping[str, Value]) -> dict[str, Change]:
    return {name: Change(None, value) for name, value in details.items()}
