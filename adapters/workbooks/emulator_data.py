"""The Workbooks emulator's seeded, believable data: campaigns, people, leads and memberships.

Kept apart from the schema (`emulator_types`) so the generator's lists of names and its shares of
awkward records can grow without touching the record types. The same seed gives the same database.
Choices where the reference is UNSURE:
- No public campaign name is known, so the generator adds the custom field
  `cf_marketing_campaign_public_name` (see `PUBLIC_NAME_FIELD`).
- Every campaign gets the emulator's default member statuses (`emulator_types.DEFAULT_STATUSES`);
  members hold Potential, Booked or, for `unsubscribed_share` of them, the one named Unsubscribed.
The record types, field definitions and value formats once defined here are re-exported from
`emulator_types`, so existing imports keep working.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from adapters.workbooks.emulator_types import (
    ACTIVITY_TYPES,
    CAMPAIGN,
    DATATYPES,
    DEFAULT_STATUSES,
    FALSE,
    LEAD,
    PERSON,
    PUBLIC_NAME_FIELD,
    TRUE,
    WORKBOOKS_TIME,
    FieldSpec,
    TypeSpec,
    coerce,
    default_types,
    parse_datetime,
    render,
)

if TYPE_CHECKING:
    from adapters.workbooks.emulator_state import WorkbooksState

__all__ = [
    "ACTIVITY_TYPES",
    "CAMPAIGN",
    "CAMPAIGNS",
    "DATATYPES",
    "DEFAULT_STATUSES",
    "DOMAINS",
    "FALSE",
    "FIRST",
    "LAST",
    "LEAD",
    "MALFORMED",
    "PERSON",
    "PUBLIC_NAME_FIELD",
    "TRUE",
    "WORKBOOKS_TIME",
    "FieldSpec",
    "TypeSpec",
    "coerce",
    "default_types",
    "generate",
    "parse_datetime",
    "render",
]


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words("Ada Ben Chloe Dev Elif Farah George Hana Ivan Jack Kemi Liam Maya Niamh Oscar Priya Quinn")
FIRST += _words("Rosa Sam Tomasz Uma Victor Wen Xavier Yusuf Zoe Aoife Bjorn Carmen Dmitri Emeka Fatima")
LAST = _words("Smith Jones Taylor Brown Williams Wilson Evans Thomas Roberts Patel Khan Murphy O'Brien Nowak")
LAST += _words(
    "Kowalski Garcia Silva Rossi Muller Dubois Nguyen Okafor Haddad Lindqvist Walsh Singh Campbell"
)
DOMAINS = _words("example.com example.co.uk mail.test acme.example globex.example initech.example")
MALFORMED = ("{f}.{l}@", "{f}.{l}example.com", "{f} {l}@example.com", "{f}@@example.com", "@example.com")
CAMPAIGNS = (
    ("Spring Newsletter 2025", "Spring news from us", "open"),
    ("Product Webinar Series", "Webinars you can join", "open"),
    ("Customer Events", "Events near you", "open"),
    ("Partner Programme", "For our partners", "open"),
    ("Winter Sale 2024", "The winter sale", "closed"),
)


def _email(
    rng: random.Random, first: str, last: str, n: int, *, malformed: bool, mixed_case: bool, unique: bool
) -> str:
    f, l_ = first.lower(), last.lower().replace("'", "")
    if malformed:
        return rng.choice(MALFORMED).format(f=f, l=l_)
    forms = [f"{f}{n}", f"{f}_{l_}{n}"] if unique else [f"{f}.{l_}", f"{f[0]}{l_}", f"{f}{n}", f"{f}_{l_}{n}"]
    local = rng.choice(forms)
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.title() if mixed_case else address


# Campaign fields a marketing team adds for the ESP's totals (rules/workbooks-dotdigital.toml names them).
TOTALS_FIELDS = {
    "cf_marketing_campaign_emails_sent": "Emails Sent",
    "cf_marketing_campaign_email_opens": "Email Opens",
    "cf_marketing_campaign_email_clicks": "Email Clicks",
    "cf_marketing_campaign_email_bounces": "Email Bounces",
    "cf_marketing_campaign_unsubscribes": "Unsubscribes",
}


def generate(
    state: WorkbooksState,
    *,
    seed: int,
    people: int = 2000,
    leads: int = 800,
    campaigns: int = 4,
    opted_out_share: float = 0.05,
    malformed_share: float = 0.005,
    mixed_case_share: float = 0.1,
    undeliverable_share: float = 0.01,
    unsubscribed_share: float = 0.05,
    unique_emails: bool = False,
    campaigns_per_party: tuple[int, int] | None = None,
) -> None:
    """Fill `state` with campaigns (the last one closed), people, leads, memberships and opt-outs.

    The same seed gives the same database. `campaigns` counts the open ones; one closed campaign is added.
    By default each campaign has 150 to 600 members, and some well-formed emails repeat. For a known
    number of contacts (the benchmarks): `unique_emails` numbers every address, and
    `campaigns_per_party=(lo, hi)` puts every person and lead in lo to hi of the open campaigns instead.
    """
    rng = random.Random(seed)
    now = state.now()
    state.add_custom_field("crm/campaigns", PUBLIC_NAME_FIELD, "string", "Public Name")
    for name, title in TOTALS_FIELDS.items():
        state.add_custom_field("crm/campaigns", name, "integer", title)
    state.add_custom_field("crm/people", "cf_person_interests", "text", "Interests")
    state.add_custom_field("crm/people", "cf_person_customer_since", "date", "Customer Since")
    state.add_custom_field("crm/people", "cf_person_loyalty_points", "integer", "Loyalty Points")
    state.add_custom_field("crm/sales_leads", "cf_sales_lead_score", "integer", "Lead Score")
    state.add_custom_field("crm/sales_leads", "cf_sales_lead_interests", "text", "Interests")
    open_specs = [c for c in CAMPAIGNS if c[2] == "open"]
    chosen = [open_specs[i % len(open_specs)] for i in range(campaigns)] + [CAMPAIGNS[-1]]
    campaign_ids: list[int] = []
    for i, (name, public, record_state) in enumerate(chosen):
        suffix = f" ({i // len(open_specs) + 1})" if i >= len(open_specs) and record_state == "open" else ""
        start = (now - timedelta(days=rng.randint(10, 300))).date()
        record = state.insert(
            "crm/campaigns",
            {
                "name": name + suffix,
                PUBLIC_NAME_FIELD: public + suffix,
                "record_state": record_state,
                "status": "Completed" if record_state == "closed" else "Active",
                "start_date": start,
                "end_date": start + timedelta(days=90),
                "budget": f"{rng.randint(5, 50) * 100} GBP",
            },
            at=now - timedelta(days=rng.randint(30, 400)),
        )
        campaign_ids.append(record["id"])
    interests = ("events", "webinars", "product news", "offers", "research")

    def when() -> datetime:
        return now - timedelta(seconds=rng.randint(3600, 86400 * 700))

    def shared(first: str, last: str, n: int) -> tuple[str, bool, bool]:
        email = _email(
            rng,
            first,
            last,
            n,
            malformed=rng.random() < malformed_share,
            mixed_case=rng.random() < mixed_case_share,
            unique=unique_emails,
        )
        return email, rng.random() < opted_out_share, rng.random() < undeliverable_share

    party_ids: list[tuple[int, str]] = []
    for n in range(people):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email, opted_out, undeliverable = shared(first, last, n)
        fields: dict[str, Any] = {
            "person_first_name": first,
            "person_last_name": last,
            "person_job_title": rng.choice(["Manager", "Director", "Engineer", "Analyst", None]),
            "employer_name": rng.choice(["Acme Ltd", "Globex plc", "Initech", "Umbrella Co", None]),
            "main_location[email]": email,
            f"main_location[{state.undeliverable_field}]": undeliverable,
            "main_location[town]": rng.choice(["London", "Leeds", "Dublin", "Bristol", "Glasgow"]),
            "main_location[country]": rng.choice(["United Kingdom", "Ireland"]),
            "no_email_soliciting": opted_out,
            "email_opt_in": not opted_out and rng.random() < 0.7,
            "cf_person_interests": rng.choice(interests),
            "cf_person_customer_since": date(2015, 1, 1) + timedelta(days=rng.randint(0, 3600)),
            "cf_person_loyalty_points": rng.randint(0, 5000),
        }
        party_ids.append((state.insert("crm/people", fields, at=when())["id"], PERSON))
    for n in range(leads):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email, opted_out, undeliverable = shared(first, last, people + n)
        fields = {
            "person_lead_party[person_first_name]": first,
            "person_lead_party[person_last_name]": last,
            "org_lead_party[name]": rng.choice(
                ["Hooli", "Vandelay Industries", "Stark Traders", "Wayne Foods"]
            ),
            "org_lead_party[main_location[email]]": email,
            f"org_lead_party[main_location[{state.undeliverable_field}]]": undeliverable,
            "org_lead_party[no_email_soliciting]": opted_out,
            "lead_source_type": rng.choice(["Web", "Event", "Referral"]),
            "cf_sales_lead_score": rng.randint(0, 100),
            "cf_sales_lead_interests": rng.choice(interests),
        }
        party_ids.append((state.insert("crm/sales_leads", fields, at=when())["id"], LEAD))
    statuses = {campaign_id: state.statuses_of(campaign_id) for campaign_id in campaign_ids}

    def join(campaign_id: int, party_id: int, party_type: str) -> None:
        status = "Unsubscribed" if rng.random() < unsubscribed_share else rng.choice(["Potential", "Booked"])
        member = {
            "marketing_campaign_id": campaign_id,
            "party_or_lead_id": party_id,
            "party_or_lead_type": party_type,
            "campaign_membership_status_id": statuses[campaign_id][status],
        }
        state.insert("crm/campaign_membership", member, at=when())

    if campaigns_per_party is None:
        for campaign_id in campaign_ids:
            for party in rng.sample(party_ids, k=min(len(party_ids), rng.randint(1, 4) * 150)):
                join(campaign_id, *party)
        return
    lo, hi = campaigns_per_party
    open_ids = campaign_ids[:-1]
    for party in party_ids:
        for campaign_id in rng.sample(open_ids, k=min(len(open_ids), rng.randint(lo, hi))):
            join(campaign_id, *party)
