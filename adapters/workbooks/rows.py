"""Workbooks records as engine rows, and engine ops as Workbooks field values.

Kept apart from the adapter, which does the calls, so that the translation is pure and can be read
and tested on its own: which column holds a person's or a sales lead's email, opt-out and
undeliverable flag (`shared/reference/workbooks-api.md` §6, §9); how a record becomes the canonical
payload the engine fingerprints; how Workbooks' date formats become the ISO text the engine's
coercion understands; which fields each CRM op sets; and how an activity gets its idempotency key.
Decisions:
- A payload is canonical JSON (msgspec, dict keys sorted) of
  ``{email, kind, opted_out, undeliverable, values, memberships}``, so equal records give equal
  bytes and so equal fingerprints. It decodes straight into `engine.records.Row`.
- Columns that change on every save (`id`, `lock_version`, `updated_at`, `updated_by`,
  `is_deleted`) are left out of `values`: a write that changes no mapped field must not make every
  row look changed to the engine.
- Text that has exactly the shape of a Workbooks datetime (``Fri Oct 03 14:31:20 UTC 2025``) or
  date (`` 2 May 2010``) is rewritten as ISO 8601; metadata datatypes are not consulted.
- A record_activity op names its campaign in `list` (campaign key, name or public name) and its
  details in `changes` (`type` required; `at`, `url`, `name`, `action_name`, `source`, `medium`,
  `key` optional). Its idempotency key goes into `created_through_reference`, the field Workbooks
  documents for an external system's id; without an explicit `key` it is a hash of the activity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import xxhash

from adapters.workbooks.wire import Value, parse_time
from engine.plans import Op
from engine.records import Campaign, Row

PEOPLE = "crm/people"
LEADS = "crm/sales_leads"
CAMPAIGNS = "crm/campaigns"
MEMBERS = "crm/campaign_membership"
ACTIVITIES = "crm/online_activities"
PERSON_CLASS = "Private::Crm::Person"
LEAD_CLASS = "Private::Crm::SalesLead"
CAMPAIGN_CLASS = "Private::Crm::MarketingCampaign"
PUBLIC_NAME = "cf_marketing_campaign_public_name"
ACTIVITY_KEY = "created_through_reference"
# A membership names its status by id only; `adapters.workbooks.statuses` says what the id stands for.
MEMBER_COLUMNS = (
    "marketing_campaign_id",
    "party_or_lead_id",
    "party_or_lead_type",
    "campaign_membership_status_id",
)
VOLATILE = frozenset({"id", "lock_version", "updated_at", "updated_by", "is_deleted"})
# Engine-side activity names, and Workbooks' own picklist values, as `online_activity_type`.
ACTIVITY_TYPES = {
    "open": "Email Open",
    "click": "Click Through",
    "bounce": "Email Bounce",
    "unsubscribe": "Unsubscribe",
    "download": "Download",
    "form": "Form Submission",
}
ACTIVITY_FIELDS = {"url": "url", "name": "name", "action_name": "action_name", "source": "source"}
ACTIVITY_FIELDS |= {"medium": "medium", "at": "activity_datetime", "bounce_code": "action_name"}


@dataclass(frozen=True)
class Kind:
    """Where one record type keeps what the engine needs: email, opt-out, undeliverable flag."""

    name: str  # the engine's record kind: "person" or "lead"
    controller: str
    class_name: str
    email: str
    opt_out: str
    location: str  # the undeliverable flag's column, with {} for its last segment

    def undeliverable(self, last_segment: str) -> str:
        return self.location.format(last_segment)

    def essentials(self, last_segment: str) -> tuple[str, ...]:
        """The columns every read of this type needs, whatever the mapping asks for."""
        return ("id", "lock_version", self.email, self.opt_out, self.undeliverable(last_segment))


PERSON = Kind(
    "person", PEOPLE, PERSON_CLASS, "main_location[email]", "no_email_soliciting", "main_location[{}]"
)
LEAD = Kind(
    "lead",
    LEADS,
    LEAD_CLASS,
    "org_lead_party[main_location[email]]",
    "org_lead_party[no_email_soliciting]",
    "org_lead_party[main_location[{}]]",
)
KINDS = (PERSON, LEAD)
BY_CLASS = {kind.class_name: kind for kind in KINDS}


class Payload(msgspec.Struct, frozen=True):
    """The bytes the engine fingerprints for one person or lead; decodes as a `Row`."""

    email: str
    kind: str
    opted_out: bool
    undeliverable: bool
    values: dict[str, Any]
    memberships: dict[str, str]


ENCODER = msgspec.json.Encoder(order="deterministic")
DECODER = msgspec.json.Decoder(Row)
_TIME = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}$")
_DATE = re.compile(r"^ ?\d{1,2} [A-Z][a-z]{2} \d{4}$")


def decode(payload: bytes) -> Row:
    """A payload of `encode_row` as the engine's `Row`."""
    return DECODER.decode(payload)


def normal_email(email: str) -> str:
    """The key the adapter indexes records by; the engine's ops carry emails in this form."""
    return email.strip().lower()


def truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "on", "1", "yes", "y")
    return value is True or value == 1


def plain(value: object) -> object:
    """A read value, with Workbooks datetimes and dates as ISO 8601 text."""
    if isinstance(value, str):
        try:
            if _TIME.match(value):
                return parse_time(value).isoformat()
            if _DATE.match(value):
                return datetime.strptime(value.strip(), "%d %b %Y").date().isoformat()
        except ValueError:
            return value
    return value


def email_of(kind: Kind, record: Mapping[str, Any]) -> str | None:
    """The record's email as Workbooks holds it; None when it has none (such rows are skipped)."""
    email = record.get(kind.email)
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    return email if isinstance(email, str) else str(email)


def encode_row(
    kind: Kind, record: Mapping[str, Any], memberships: Mapping[str, str], undeliverable: str
) -> bytes | None:
    """The canonical payload of a person or lead, or None if it has no email."""
    email = email_of(kind, record)
    if email is None:
        return None
    values = {name: plain(value) for name, value in record.items() if name not in VOLATILE}
    payload = Payload(
        email=email,
        kind=kind.name,
        opted_out=truthy(record.get(kind.opt_out)),
        undeliverable=truthy(record.get(kind.undeliverable(undeliverable))),
        values=values,
        memberships=dict(memberships),
    )
    return ENCODER.encode(payload)


def campaign_of(record: Mapping[str, Any], fields: Sequence[str]) -> Campaign:
    """A campaign record as the engine's `Campaign`; open unless its `record_state` says otherwise."""
    state = record.get("record_state")
    values = {name: str(plain(record[name])) for name in fields if record.get(name) not in (None, "")}
    return Campaign(
        key=str(record["id"]),
        name=str(record.get("name") or ""),
        status=str(state).strip().lower() if state else "open",
        fields=values,
    )


def party_of(member: Mapping[str, Any]) -> tuple[Kind, int] | None:
    """The record type and id a membership links to, if it is a person or a lead."""
    kind = BY_CLASS.get(str(member.get("party_or_lead_type") or PERSON_CLASS))
    party = member.get("party_or_lead_id")
    return (kind, party) if kind is not None and isinstance(party, int) else None


def memberships(
    members: Iterable[Mapping[str, Any]], status_of: Callable[[Mapping[str, Any]], str]
) -> dict[tuple[str, int], dict[str, str]]:
    """(party class, party id) -> {campaign key: status text}, from live memberships; `status_of`
    names a membership's status (`adapters.workbooks.statuses.Statuses.of`)."""
    found: dict[tuple[str, int], dict[str, str]] = {}
    for member in members:
        party, campaign = party_of(member), member.get("marketing_campaign_id")
        if member.get("is_deleted") or party is None or campaign is None:
            continue
        found.setdefault((party[0].class_name, party[1]), {})[str(campaign)] = status_of(member)
    return found


def newer(newest: datetime | None, record: Mapping[str, Any]) -> datetime | None:
    """The later of `newest` and the record's `updated_at`."""
    text = record.get("updated_at")
    if not isinstance(text, str):
        return newest
    try:
        seen = parse_time(text)
    except ValueError:
        return newest
    return seen if newest is None or seen > newest else newest


def op_fields(op: Op, kind: Kind, undeliverable: str) -> dict[str, Value]:
    """The fields an opt_out_crm, mark_undeliverable_crm or update_crm op sets on a record of `kind`."""
    if op.kind == "opt_out_crm":
        return {kind.opt_out: True}
    if op.kind == "mark_undeliverable_crm":
        return {kind.undeliverable(undeliverable): True}
    fields: dict[str, Value] = {}
    for name, change in op.changes.items():
        if name == "opted_out":
            fields[kind.opt_out] = truthy(change.new)
        elif name == "undeliverable":
            fields[kind.undeliverable(undeliverable)] = truthy(change.new)
        else:
            fields[name] = change.new
    return fields


def activity_fields(
    op: Op, campaign_id: int, kind: Kind, party_id: int
) -> tuple[str, dict[str, Value]] | str:
    """The idempotency key and the fields of the online activity `op` records, or why it cannot."""
    details = {name: change.new for name, change in op.changes.items()}
    named = details.get("type")
    if not isinstance(named, str) or not named.strip():
        return "record_activity needs changes['type'] (open, click, bounce, unsubscribe, ...)"
    activity_type = ACTIVITY_TYPES.get(named.strip().lower(), named.strip())
    key = details.get("key")
    if not isinstance(key, str) or not key:
        identity = [op.email, campaign_id, activity_type, sorted((k, str(v)) for k, v in details.items())]
        key = "listsync:" + xxhash.xxh3_64_hexdigest(ENCODER.encode(identity))
    fields: dict[str, Value] = {
        "online_activity_type": activity_type,
        "marketing_campaign_id": campaign_id,
        "party_or_lead_id": party_id,
        "party_or_lead_type": kind.class_name,
        "name": op.reason or f"{activity_type}: {op.email}",
        "source": "listsync",
        ACTIVITY_KEY: key,
    }
    for name, column in ACTIVITY_FIELDS.items():
        value = details.get(name)
        if value is not None and not isinstance(value, bool):
            fields[column] = _when(value) if name == "at" else value
    return key, fields


def _when(value: Value) -> Value:
    """An ISO 8601 time from the engine as a datetime, which the wire writes in Workbooks' format."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


def escape(value: str) -> str:
    """A value for a comma-separated `eq` filter (an IN): literal commas escaped."""
    return value.replace(",", "\\,")
