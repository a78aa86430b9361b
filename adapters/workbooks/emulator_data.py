"""The Workbooks emulator's schema (record types and their fields) and its seeded, believable data.

Workbooks publishes no schema file: a database describes itself at run time through
`metadata/types.api`. The types below are assembled from the field names in
`shared/reference/workbooks-api.md` §6, so an adapter can check its mapped fields against them.
Choices where the reference is UNSURE:
- The campaign class is `Private::Crm::MarketingCampaign`; the membership class is
  `Private::Crm::CampaignMembership`; leads are members with `party_or_lead_type=Private::Crm::SalesLead`.
- Open or closed is the campaign's `record_state` (`open` / `closed`).
- No public campaign name is known, so the generator adds the custom field
  `cf_marketing_campaign_public_name` (see `PUBLIC_NAME_FIELD`).
- Every campaign gets the default statuses plus `Unsubscribed` (the status an unsubscribe sets).
- An online activity links to a campaign by `marketing_campaign_id` and to a person or lead by
  `party_or_lead_id` + `party_or_lead_type`, like a membership.
- The undeliverable flag is `main_location[email_address_undeliverable]` by default; the name of the
  last segment is a parameter of `WorkbooksState` (`undeliverable_field`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.workbooks.emulator_state import WorkbooksState

PERSON = "Private::Crm::Person"
LEAD = "Private::Crm::SalesLead"
CAMPAIGN = "Private::Crm::MarketingCampaign"
PUBLIC_NAME_FIELD = "cf_marketing_campaign_public_name"
DEFAULT_STATUSES = ("Potential", "Interested", "Not Interested", "Booked", "Cancelled", "Unsubscribed")
DATATYPES = (
    "string",
    "text",
    "boolean",
    "integer",
    "datetime",
    "date",
    "foreign_key",
    "currency",
    "picklist",
)


@dataclass
class FieldSpec:
    """One field of a record type, as `metadata/types.api` describes it."""

    name: str
    datatype: str = "string"
    title: str = ""
    required: bool = False
    createable: bool = True
    updateable: bool = True
    filterable: bool = True
    default: Any = None
    picklist: tuple[str, ...] | None = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "title": self.title or self.name.replace("_", " ").replace("[", " ").replace("]", "").title(),
            "datatype": self.datatype,
            "required": self.required,
            "is_createable": self.createable,
            "is_updateable": self.updateable,
            "is_filterable": self.filterable,
            "is_nullable": not self.required,
            "default_value": self.default,
        }
        if self.picklist is not None:
            described["picklist"] = list(self.picklist)
        return described


@dataclass
class TypeSpec:
    """One record type: its class, controller path and fields."""

    class_name: str
    controller: str
    human: str
    prefix: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    associations: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "class_name": self.class_name,
            "controller_path": self.controller,
            "human_class_name": self.human,
            "fields": [spec.describe() for spec in self.fields.values()],
            "associations": self.associations,
        }


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    common = (
        FieldSpec("id", "integer", createable=False, updateable=False),
        FieldSpec("lock_version", "integer", createable=False, updateable=False),
        FieldSpec("type", createable=False, updateable=False),
        FieldSpec("object_ref", createable=False, updateable=False),
        FieldSpec("is_deleted", "boolean", createable=False, updateable=False, default=False),
        FieldSpec("created_at", "datetime", createable=False, updateable=False),
        FieldSpec("updated_at", "datetime", createable=False, updateable=False),
        FieldSpec("created_by", createable=False, updateable=False),
        FieldSpec("updated_by", createable=False, updateable=False),
        FieldSpec("created_through", createable=False, updateable=False),
        FieldSpec("created_through_reference"),
    )
    return {spec.name: spec for spec in (*common, *specs)}


def _location(prefix: str, undeliverable: str) -> list[FieldSpec]:
    names = ("email", "telephone", "mobile", "street_address", "town", "postcode", "country")
    return [FieldSpec(f"{prefix}[{name}]") for name in names] + [
        FieldSpec(f"{prefix}[{undeliverable}]", "boolean", default=False)
    ]


def default_types(undeliverable: str = "email_address_undeliverable") -> dict[str, TypeSpec]:
    """The record types the emulator serves, keyed by controller path."""
    consent = [
        FieldSpec(f"no_{kind}_soliciting", "boolean", default=False) for kind in ("email", "phone", "post")
    ]
    lead_org = [FieldSpec(f"org_lead_party[{name}]") for name in ("name", "website", "industry")]
    lead_org += [FieldSpec(f"org_lead_party[{f.name}]", "boolean", default=False) for f in consent]
    lead_org += [
        FieldSpec(f"org_lead_party[{f.name}]", f.datatype, default=f.default)
        for f in _location("main_location", undeliverable)
    ]
    member_links = [
        FieldSpec("marketing_campaign_id", "foreign_key", required=True),
        FieldSpec("party_or_lead_id", "foreign_key", required=True),
        FieldSpec("party_or_lead_type", "picklist", default=PERSON, picklist=(PERSON, LEAD)),
    ]
    party_assoc = {"name": "party_or_lead", "class_names": [PERSON, LEAD], "polymorphic": True}
    campaign_assoc = {"name": "marketing_campaign", "class_names": [CAMPAIGN], "polymorphic": False}
    types = [
        TypeSpec(
            PERSON,
            "crm/people",
            "Person",
            "PERS",
            _fields(
                FieldSpec("name", createable=False, updateable=False),
                *(FieldSpec(f"person_{n}") for n in ("first_name", "middle_name", "personal_title")),
                FieldSpec("person_last_name", required=True),
                FieldSpec("person_job_title"),
                FieldSpec("employer_name"),
                *_location("main_location", undeliverable),
                *consent,
                FieldSpec("email_opt_in", "boolean", default=False),
                FieldSpec("sync_with_mailer", "boolean", default=False),
                FieldSpec("marketing_campaign_id", "foreign_key"),
                FieldSpec("lead_source_type"),
            ),
        ),
        TypeSpec(
            LEAD,
            "crm/sales_leads",
            "Sales Lead",
            "LEAD",
            _fields(
                FieldSpec("name", createable=False, updateable=False),
                FieldSpec("person_lead_party[name]", createable=False, updateable=False),
                *(
                    FieldSpec(f"person_lead_party[person_{n}]")
                    for n in ("first_name", "last_name", "job_title")
                ),
                *lead_org,
                FieldSpec(
                    "sales_lead_status_type", "picklist", default="New", picklist=("New", "Qualified", "Lost")
                ),
                FieldSpec("lead_source_type"),
                FieldSpec("record_state", "picklist", default="open", picklist=("open", "closed")),
                FieldSpec("marketing_campaign_id", "foreign_key"),
            ),
        ),
        TypeSpec(
            CAMPAIGN,
            "crm/campaigns",
            "Marketing Campaign",
            "CAMP",
            _fields(
                FieldSpec("name", required=True),
                FieldSpec(
                    "status", "picklist", default="Planned", picklist=("Planned", "Active", "Completed")
                ),
                FieldSpec("category", default="Mail Shot"),
                FieldSpec("record_state", "picklist", default="open", picklist=("open", "closed")),
                FieldSpec("start_date", "date"),
                FieldSpec("end_date", "date"),
                FieldSpec("budget", "currency"),
                FieldSpec("goals", "text"),
            ),
        ),
        TypeSpec(
            "Private::Crm::CampaignMembership",
            "crm/campaign_membership",
            "Campaign Member",
            "MEMB",
            _fields(
                *member_links,
                FieldSpec("campaign_membership_status_id", "foreign_key"),
                FieldSpec("campaign_membership_status[status]", createable=False, updateable=False),
                FieldSpec("member_name", createable=False, updateable=False),
            ),
            [campaign_assoc, party_assoc],
        ),
        TypeSpec(
            "Private::Crm::CampaignMembershipStatus",
            "crm/campaign_membership_status",
            "Campaign Membership Status",
            "CMST",
            _fields(
                FieldSpec("marketing_campaign_id", "foreign_key", required=True),
                FieldSpec("status", required=True),
                FieldSpec("name"),
            ),
            [campaign_assoc],
        ),
        TypeSpec(
            "Private::Crm::OnlineActivity",
            "crm/online_activities",
            "Online Activity",
            "ONLA",
            _fields(
                FieldSpec("name"),
                FieldSpec("online_activity_type", "picklist", required=True, picklist=ACTIVITY_TYPES),
                *(FieldSpec(n) for n in ("action_name", "source", "medium", "url")),
                FieldSpec("activity_datetime", "datetime"),
                *member_links,
            ),
            [campaign_assoc, party_assoc],
        ),
    ]
    return {spec.controller: spec for spec in types}


TRUE = frozenset({"true", "t", "on", "1", "yes", "y"})
FALSE = frozenset({"false", "f", "off", "0", "no", "n", ""})
WORKBOOKS_TIME = "%a %b %d %H:%M:%S UTC %Y"


def _words(text: str) -> list[str]:
    return text.split()


def parse_datetime(text: str) -> datetime:
    text = text.strip()
    for fmt in (WORKBOOKS_TIME, "%d %b %Y", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def render(value: Any) -> Any:
    """A stored value as Workbooks writes it in JSON."""
    if isinstance(value, datetime):
        return value.strftime(WORKBOOKS_TIME)
    if isinstance(value, date):
        return f"{value.day:>2} {value:%b %Y}"
    return value


def coerce(spec: FieldSpec, raw: Any) -> Any:
    """A wire string (or a Python value from the generator) as the stored value; ValueError if invalid."""
    if raw is None or not isinstance(raw, str):
        return raw
    kind = spec.datatype
    if kind == "boolean":
        if raw.strip().lower() not in TRUE | FALSE:
            raise ValueError("is not a valid boolean")
        return raw.strip().lower() in TRUE
    if kind in ("integer", "foreign_key"):
        return int(raw) if raw.strip() else None
    if kind == "datetime":
        return parse_datetime(raw) if raw.strip() else None
    if kind == "date":
        return parse_datetime(raw).date() if raw.strip() else None
    if spec.picklist is not None and raw and raw not in spec.picklist:
        raise ValueError(f"is not one of {', '.join(spec.picklist)}")
    return raw


ACTIVITY_TYPES = ("Download", "Click Through", "Email Open", "Email Bounce", "Unsubscribe", "Form Submission")

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


def _email(rng: random.Random, first: str, last: str, n: int, *, malformed: bool, mixed_case: bool) -> str:
    f, l_ = first.lower(), last.lower().replace("'", "")
    if malformed:
        return rng.choice(MALFORMED).format(f=f, l=l_)
    local = rng.choice([f"{f}.{l_}", f"{f[0]}{l_}", f"{f}{n}", f"{f}_{l_}{n}"])
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.title() if mixed_case else address


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
) -> None:
    """Fill `state` with campaigns (the last one closed), people, leads, memberships and opt-outs.

    The same seed gives the same database. `campaigns` counts the open ones; one closed campaign is added.
    """
    rng = random.Random(seed)
    now = state.now()
    state.add_custom_field("crm/campaigns", PUBLIC_NAME_FIELD, "string", "Public Name")
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
    for campaign_id in campaign_ids:
        statuses = state.statuses_of(campaign_id)
        for party_id, party_type in rng.sample(party_ids, k=min(len(party_ids), rng.randint(1, 4) * 150)):
            status = (
                "Unsubscribed" if rng.random() < unsubscribed_share else rng.choice(["Potential", "Booked"])
            )
            member = {
                "marketing_campaign_id": campaign_id,
                "party_or_lead_id": party_id,
                "party_or_lead_type": party_type,
                "campaign_membership_status_id": statuses[status],
            }
            state.insert("crm/campaign_membership", member, at=when())
