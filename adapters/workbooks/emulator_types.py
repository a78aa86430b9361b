"""The Workbooks emulator's vocabulary: record types, their fields, wire value formats and request errors.

Kept apart from the database (`emulator_state`), the query engine (`emulator_queries`) and the
generator (`emulator_data`) because all of them, and the HTTP layer, share these definitions.
Workbooks publishes no schema file: a database describes itself at run time through
`metadata/types.api`. The types below are assembled from the field names in
`shared/reference/workbooks-api.md` §6, so an adapter can check its mapped fields against them.
Choices where the reference is UNSURE:
- The campaign class is `Private::Crm::MarketingCampaign`; the membership class is
  `Private::Crm::CampaignMembership`; leads are members with `party_or_lead_type=Private::Crm::SalesLead`.
- Open or closed is the campaign's `record_state` (`open` / `closed`).
- Every campaign gets member statuses (`crm/campaign_membership_status`) of its own: the mandatory
  Potential, Booked and Cancelled, unnamed; Interested (a Potential) and Not Interested (a Cancelled);
  and a Cancelled named Unsubscribed (the status an unsubscribe sets). A membership holds only the
  status id: no joined status column is served, as the reference documents none.
- An online activity links to a campaign by `marketing_campaign_id` and to a person or lead by
  `party_or_lead_id` + `party_or_lead_type`, like a membership.
- The undeliverable flag is `main_location[email_address_undeliverable]` by default; the name of the
  last segment is a parameter of `WorkbooksState` (`undeliverable_field`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

PERSON = "Private::Crm::Person"
LEAD = "Private::Crm::SalesLead"
CAMPAIGN = "Private::Crm::MarketingCampaign"
PUBLIC_NAME_FIELD = "cf_marketing_campaign_public_name"
# Every new campaign's member statuses, as (status, name): the mandatory ones are unnamed (None).
DEFAULT_STATUSES: tuple[tuple[str, str | None], ...] = (
    ("Potential", None),
    ("Booked", None),
    ("Cancelled", None),
    ("Potential", "Interested"),
    ("Cancelled", "Not Interested"),
    ("Cancelled", "Unsubscribed"),
)
ACTIVITY_TYPES = ("Download", "Click Through", "Email Open", "Email Bounce", "Unsubscribe", "Form Submission")
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


class WorkbooksError(Exception):
    """A refusal of the whole request: HTTP status, `failure_reason`, `failure_message`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


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
