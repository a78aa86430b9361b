"""Seeded generation for the Constant Contact emulator: a realistic account, and campaign sends.

``generate`` fills a ``ConstantContactState`` with people (names, a few custom fields), contact lists,
opt-outs of both sources (the contact's own, and the account's), and sent campaigns; ``simulate_send``
sends a campaign to its lists' subscribed members and records what each recipient did as tracking
events (sends, opens, clicks, bounces with their codes, opt-outs), the way ``generate_activity`` on
the state does for tests. Generation draws only on a ``random.Random(seed)``, so a seed is an account.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from adapters.constantcontact.emulator_data import BOUNCE_CODES, EmailCampaign, Tracking

if TYPE_CHECKING:
    from adapters.constantcontact.emulator_state import ConstantContactState

_FIRST = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Freya", "Grace", "Sophia", "Noah", "Oliver",
    "George", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Theo", "Aoife", "Priya", "Anil", "Zoe", "Ewan",
)  # fmt: skip
_LAST = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Wright",
    "Evans", "Robinson", "Thompson", "Walker", "White", "Roberts", "Green", "Hall", "O'Neill", "Khan",
)  # fmt: skip
_DOMAINS = ("example.com", "example.co.uk", "mail.example.org", "acme-widgets.example", "northwind.example")
_CITIES = ("London", "Manchester", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "Leicester")
_LISTS = (
    "All Workbooks Contacts", "Spring Newsletter", "Webinar Attendees 2025", "Trade Show Leads",
    "VIP Customers", "Product Updates",
)  # fmt: skip
_FIELDS = (("CITY", "string"), ("CRM_ID", "string"), ("LAST_PURCHASE", "date"))
_URLS = ("https://www.example.com/", "https://www.example.com/pricing", "https://events.example.com/register")


@dataclass(frozen=True)
class SendShares:
    """How a simulated send goes: shares of recipients who bounce, open, click (of openers), opt out."""

    bounce: float = 0.05
    open: float = 0.45
    click: float = 0.35
    optout: float = 0.02


def generate(
    state: ConstantContactState,
    *,
    seed: int,
    contacts: int = 250,
    lists: int = 4,
    unsubscribed_share: float = 0.06,
    campaigns: int = 3,
) -> None:
    """Fill ``state`` with a realistic account; the same seed always gives the same account."""
    rng = random.Random(seed)
    now = state.now()
    fields = {name: state.create_custom_field(name, type_).id for name, type_ in _FIELDS}
    made_lists = [state.create_list(name).id for name in _LISTS[: max(1, min(lists, len(_LISTS)))]]
    master, others = made_lists[0], made_lists[1:]
    made = 0
    while made < contacts:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"))
        email = f"{local.replace(chr(39), '')}{rng.randint(1, 999)}@{rng.choice(_DOMAINS)}".lower()
        if state.contact_by_email(email) is not None:
            continue
        created = now - timedelta(days=rng.uniform(1, 400))
        contact = state.add_contact(email, created=created)
        contact.scalars = {"first_name": first, "last_name": last}
        contact.custom = {
            fields["CITY"]: rng.choice(_CITIES),
            fields["CRM_ID"]: f"PER-{rng.randint(10000, 99999)}",
            fields["LAST_PURCHASE"]: (created + timedelta(days=rng.uniform(0, 30))).date().isoformat(),
        }
        contact.lists = dict.fromkeys([master, *rng.sample(others, min(len(others), rng.randint(0, 2)))])
        if rng.random() < unsubscribed_share:
            when = created + (now - created) * rng.random()
            state.unsubscribe(contact, "Contact" if rng.random() < 0.7 else "Account", when=when)
        made += 1
    for number in range(campaigns):
        sent = now - timedelta(days=rng.uniform(1, 20))
        target = rng.choice(others or [master])
        name = f"Campaign {number + 1}: {state.lists[target].name}"
        simulate_send(state, state.add_campaign(name, list_ids=[target], sent_at=sent), rng, SendShares())


def simulate_send(
    state: ConstantContactState, campaign: EmailCampaign, rng: random.Random, shares: SendShares
) -> int:
    """Send ``campaign`` to its lists' subscribed members not sent it yet; record their tracking.

    An opt-out unsubscribes the contact (source Contact); a bounce leaves the contact as it is (v3 has
    no bounce status on a contact). Events fall between the send and now. Returns the recipients added."""
    now = state.now()
    span = max((now - campaign.sent_at).total_seconds(), 60.0)
    sent_to = {e.contact_id for e in campaign.tracking if e.kind == "em_sends"}

    def later(after: datetime) -> datetime:
        return min(now, after + timedelta(seconds=rng.uniform(30, span) * rng.random()))

    added = 0
    for contact in list(state.contacts.values()):
        if contact.id in sent_to or contact.deleted_at is not None or contact.permission == "unsubscribed":
            continue
        if not any(list_id in contact.lists for list_id in campaign.list_ids):
            continue
        added += 1
        events = campaign.tracking

        def event(kind: str, at: datetime, **extra: str) -> None:
            events.append(Tracking(kind, contact.id, contact.email, at, **extra))  # noqa: B023

        event("em_sends", campaign.sent_at)
        if rng.random() < shares.bounce:
            code = rng.choice(BOUNCE_CODES)
            event("em_bounces", later(campaign.sent_at), bounce_code=code)
            continue
        last = campaign.sent_at
        if rng.random() < shares.open:
            for _ in range(rng.randint(1, 3)):
                last = max(last, opened := later(campaign.sent_at))
                event("em_opens", opened)
            if rng.random() < shares.click:
                url = rng.choice(_URLS)
                clicked = later(last)
                event("em_clicks", clicked, link_url=url, url_id=str(_URLS.index(url) + 1))
                last = max(last, clicked)
        if rng.random() < shares.optout:
            at = later(last)
            event("em_optouts", at)
            state.unsubscribe(contact, "Contact", "opted out from the email", when=at)
    return added
