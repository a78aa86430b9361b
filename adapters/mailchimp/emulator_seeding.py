"""Seeded generation of a realistic Mailchimp account, and simulated campaign sends.

``generate`` fills a ``MailchimpState`` with one audience of people (merge fields filled in, some who
typed their address in mixed case), a few tags, some unsubscribed (mostly by themselves, a few by an
admin or as abuse complaints), some cleaned and some archived, and sent campaigns with activity.
``simulate_activity`` sends a campaign to its tag's mailable members and records opens, clicks, bounces
(a hard bounce cleans the member) and unsubscribes. Both draw only on the ``random.Random`` they are given
so the same seed gives the same account.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from adapters.mailchimp.emulator_data import Audience, Campaign, MergeField, Recipient, subscriber_hash

if TYPE_CHECKING:
    from adapters.mailchimp.emulator_state import MailchimpState

_FIRST = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Freya", "Grace", "Sophia", "Noah", "Oliver",
    "George", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Theo", "Aoife", "Priya", "Anil", "Zoe", "Rhys",
)  # fmt: skip
_LAST = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Patel", "Wright", "Evans",
    "Robinson", "Thompson", "Walker", "Roberts", "Green", "Hall", "O'Neill", "Singh", "Khan", "Murphy",
)  # fmt: skip
_DOMAINS = ("example.com", "example.co.uk", "mail.example.org", "acme-widgets.example")
_TAGS = ("Spring Newsletter", "Webinar Attendees", "Trade Show Leads", "VIP Customers", "Renewals Q3")
_URLS = ("https://www.example.com/", "https://www.example.com/pricing", "https://events.example.com/register")
_SELF_REASONS = (
    "I no longer want to receive these emails",
    "I never signed up for this mailing list",
    "The emails are inappropriate",
    "Other",
)
ABUSE_REASON = "N/A (Campaign Abuse Complaint)"


@dataclass(frozen=True)
class ActivityShares:
    """How a simulated send goes: shares of recipients who bounce, open, click (of openers), opt out."""

    hard_bounce: float = 0.02
    soft_bounce: float = 0.03
    open: float = 0.45
    click: float = 0.35
    unsubscribe: float = 0.02
    complaint: float = 0.003


def generate(
    state: MailchimpState,
    *,
    seed: int,
    members: int = 3000,
    tags: int = 4,
    unsubscribed_share: float = 0.05,
    cleaned_share: float = 0.02,
    archived_share: float = 0.01,
    campaigns: int = 3,
    name: str = "Listsync Customers",
) -> Audience:
    """One audience filled realistically; the same seed always gives the same account."""
    rng = random.Random(seed)
    now = state.now()
    audience = state.create_audience(name)
    for tag, label, type_, choices in (
        ("CITY", "City", "text", ()), ("CRM_ID", "CRM Id", "text", ()), ("SCORE", "Lead score", "number", ()),
        ("CUSTOMER", "Customer", "radio", ("Yes", "No")),
    ):  # fmt: skip
        audience.merge_fields[tag] = MergeField(len(audience.merge_fields) + 1, tag, label, type_, choices)
    segments = [state.create_segment(audience, t) for t in rng.sample(_TAGS, min(tags, len(_TAGS)))]
    while len(audience.members) < members:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first}.{last}{rng.randint(1, 9999)}@{rng.choice(_DOMAINS)}".replace("'", "")
        if rng.random() > 0.15:  # most typed in lower case; some keep their capitals
            email = email.lower()
        if subscriber_hash(email) in audience.members:
            continue
        joined = now - timedelta(days=rng.uniform(1, 400))
        member = state.add_member(audience, email, "subscribed", when=joined)
        member.merge.update({
            "FNAME": first, "LNAME": last, "CITY": rng.choice(("London", "Leeds", "Bristol", "Glasgow")),
            "CRM_ID": f"PER-{rng.randint(10000, 99999)}", "SCORE": rng.randint(0, 100),
            "CUSTOMER": rng.choice(("Yes", "No")),
        })  # fmt: skip
        for segment in rng.sample(segments, rng.randint(0, min(2, len(segments)))):
            segment.members[member.id] = None
        roll, when = rng.random(), joined + (now - joined) * rng.random()
        if roll < unsubscribed_share:
            reason = rng.choice(
                (*_SELF_REASONS, *_SELF_REASONS, "N/A (Unsubscribed by an admin)", ABUSE_REASON)
            )
            state.unsubscribe(audience, member, reason, when)
        elif roll < unsubscribed_share + cleaned_share:
            member.status, member.last_changed = "cleaned", when
        elif roll < unsubscribed_share + cleaned_share + archived_share:
            member.status_before_archive, member.status, member.last_changed = "subscribed", "archived", when
    for number in range(campaigns if segments else 0):
        segment = rng.choice(segments)
        campaign = state.add_campaign(
            audience.id, f"Campaign {number + 1}: {segment.name}", segment_id=segment.id,
            sent_at=now - timedelta(days=rng.uniform(1, 20)),
        )  # fmt: skip
        simulate_activity(state, campaign, rng, ActivityShares())
    return audience


def simulate_activity(
    state: MailchimpState, campaign: Campaign, rng: random.Random, shares: ActivityShares
) -> int:
    """Send ``campaign`` to its tag's (or the audience's) subscribed members not yet sent it, and
    record what each did; events fall between the send and now. Returns the recipients added."""
    audience = state.audience(campaign.list_id)
    now = state.now()
    span = max((now - campaign.send_time).total_seconds(), 60.0)

    def later(after: datetime) -> datetime:
        return min(now, after + timedelta(seconds=rng.uniform(30, span) * rng.random()))

    targets = (
        audience.segments[campaign.segment_id].members
        if campaign.segment_id in audience.segments
        else audience.members
    )
    added = 0
    for member_id in list(targets):
        member = audience.members.get(member_id)
        if member is None or member.status != "subscribed" or member_id in campaign.recipients:
            continue
        recipient = Recipient(member_id, member.email)
        campaign.recipients[member_id] = recipient
        added += 1
        roll = rng.random()
        if roll < shares.hard_bounce + shares.soft_bounce:
            kind = "hard" if roll < shares.hard_bounce else "soft"
            recipient.bounce = (kind, later(campaign.send_time))
            if kind == "hard":
                member.status, member.last_changed = "cleaned", recipient.bounce[1]
            continue
        if rng.random() < shares.open:
            recipient.opens = sorted(later(campaign.send_time) for _ in range(rng.randint(1, 4)))
            if rng.random() < shares.click:
                clicks = [(rng.choice(_URLS), later(recipient.opens[0])) for _ in range(rng.randint(1, 3))]
                recipient.clicks = sorted(clicks, key=lambda c: c[1])
        if rng.random() < shares.unsubscribe + shares.complaint:
            recipient.complained = rng.random() < shares.complaint / (shares.unsubscribe + shares.complaint)
            reason = ABUSE_REASON if recipient.complained else rng.choice(_SELF_REASONS)
            when = later(max([*recipient.opens, campaign.send_time]))
            recipient.unsubscribed = (reason, when)
            state.unsubscribe(audience, member, reason, when)
    return added
