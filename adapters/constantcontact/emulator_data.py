"""The records a Constant Contact account holds in the emulator, and the vendor's value rules.

Kept apart from the behaviour (``emulator_state.py``) because these are *data*: what a contact, a list,
a custom field, a bulk activity, an email campaign and a tracking event are, how each renders as the
v3 JSON of the Swagger document (``shared/vendor-specs/constant-contact/constant-contact-v3-swagger.yaml``),
and what an email address, a custom field label or a custom field value must look like.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

# Scalar contact properties a JSON import, a POST and a PUT may carry (the rest of ContactResource
# is sub-resources or read-only).
SCALARS = ("first_name", "last_name", "job_title", "company_name")
PERMISSIONS = frozenset(
    {"explicit", "implicit", "not_set", "pending_confirmation", "temp_hold", "unsubscribed"}
)
TERMINAL = frozenset({"completed", "cancelled", "failed", "timed_out"})
# Bounce codes (BouncesTrackingActivity.bounce_code).
BOUNCE_CODES = ("B", "D", "F", "S", "V", "X", "Z")
TRACKING_KINDS = {
    "sends": "em_sends",
    "opens": "em_opens",
    "clicks": "em_clicks",
    "bounces": "em_bounces",
    "optouts": "em_optouts",
}
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,}$")
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """A query's date-time (ISO 8601; naive means UTC); raises ValueError."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def valid_email(email: str) -> bool:
    return len(email) <= 80 and bool(_EMAIL.match(email))


def field_name(label: str) -> str:
    """A custom field's read-only ``name``: its label with every other character than letters, digits
    and underscores replaced by an underscore."""
    return re.sub(r"[^A-Za-z0-9_]", "_", label.strip())


def custom_value(type_: str, value: Any) -> str | None:
    """A custom field value as stored (dates as YYYY-MM-DD), None for empty; ValueError if unusable."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) > 255:
        raise ValueError("longer than 255 characters")
    if type_ == "date":
        for form in _DATE_FORMATS:
            try:
                return datetime.strptime(text[:10], form).date().isoformat()
            except ValueError:
                continue
        return date.fromisoformat(text[:10]).isoformat()
    if type_ == "number":
        return str(float(text)) if "." in text else str(int(text))
    return text


@dataclass
class Contact:
    id: str
    email: str
    created_at: datetime
    updated_at: datetime
    permission: str = "implicit"
    opt_in_source: str = "Account"
    opt_in_date: datetime | None = None
    opt_out_source: str | None = None  # "Contact" (they opted out themselves) or "Account"
    opt_out_date: datetime | None = None
    opt_out_reason: str | None = None
    create_source: str = "Account"
    update_source: str = "Account"
    scalars: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)  # custom field id -> value
    lists: dict[str, None] = field(default_factory=dict)  # ordered set of list ids
    deleted_at: datetime | None = None

    def wire(self, include: frozenset[str]) -> dict[str, Any]:
        address: dict[str, Any] = {
            "address": self.email,
            "permission_to_send": self.permission,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "opt_in_source": self.opt_in_source,
            "confirm_status": "off",
        }
        if self.opt_in_date is not None:
            address["opt_in_date"] = iso(self.opt_in_date)
        if self.opt_out_source is not None and self.opt_out_date is not None:
            address["opt_out_source"] = self.opt_out_source
            address["opt_out_date"] = iso(self.opt_out_date)
            address["opt_out_reason"] = self.opt_out_reason or ""
        body: dict[str, Any] = {
            "contact_id": self.id,
            "email_address": address,
            **self.scalars,
            "create_source": self.create_source,
            "update_source": self.update_source,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if self.deleted_at is not None:
            body["deleted_at"] = self.deleted_at.date().isoformat()
        if "custom_fields" in include:
            body["custom_fields"] = [{"custom_field_id": k, "value": v} for k, v in self.custom.items()]
        if "list_memberships" in include:
            body["list_memberships"] = list(self.lists)
        return body


@dataclass
class ContactList:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    favorite: bool = False
    description: str = ""

    def wire(self, members: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "list_id": self.id,
            "name": self.name,
            "favorite": self.favorite,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if members is not None:
            body["membership_count"] = members
        return body


@dataclass
class CustomField:
    id: str
    label: str
    name: str
    type: str
    created_at: datetime

    def wire(self) -> dict[str, Any]:
        return {
            "custom_field_id": self.id,
            "label": self.label,
            "name": self.name,
            "type": self.type,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }


@dataclass
class BulkActivity:
    """One queued bulk activity: its kind, what it carries, and how far it got."""

    id: str
    kind: str  # contacts_json_import, add_list_memberships, remove_list_memberships, contact_delete
    created_at: datetime
    payload: dict[str, Any]
    polls_needed: int
    outcome: str
    stalled: bool
    polls: int = 0
    state: str = "initialized"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def queued(self) -> bool:
        return self.state not in TERMINAL

    def wire(self) -> dict[str, Any]:
        done = self.state == "completed"
        body: dict[str, Any] = {
            "activity_id": self.id,
            "state": self.state,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.completed_at or self.started_at or self.created_at),
            "percent_done": 100 if done else (50 if self.state == "processing" else 0),
            "activity_errors": list(self.errors),
            "status": dict(self.counts),
            "_links": {"self": {"href": f"/v3/activities/{self.id}"}},
        }
        if self.started_at is not None:
            body["started_at"] = iso(self.started_at)
        if self.completed_at is not None:
            body["completed_at"] = iso(self.completed_at)
        return body


@dataclass
class Tracking:
    """One tracking event of a campaign activity, as the ``/reports/email_reports`` feeds list it."""

    kind: str  # em_sends, em_opens, em_clicks, em_bounces, em_optouts
    contact_id: str
    email: str
    at: datetime
    link_url: str | None = None
    url_id: str | None = None
    bounce_code: str | None = None

    def wire(self, activity_id: str, contact: Contact | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contact_id": self.contact_id,
            "campaign_activity_id": activity_id,
            "tracking_activity_type": self.kind,
            "email_address": self.email,
            "first_name": (contact.scalars.get("first_name", "") if contact else ""),
            "last_name": (contact.scalars.get("last_name", "") if contact else ""),
            "created_time": iso(self.at),
        }
        if self.kind in ("em_opens", "em_clicks"):
            body["device_type"] = "computer"
        if self.kind == "em_clicks":
            body["link_url"], body["url_id"] = self.link_url or "", self.url_id or ""
        if self.kind == "em_bounces":
            body["bounce_code"] = self.bounce_code or "X"
        if self.kind == "em_optouts":
            body["opt_out_reason"] = ""
        return body


@dataclass
class EmailCampaign:
    """An email campaign with its primary email activity, sent to some lists, and its tracking."""

    id: str
    activity_id: str
    name: str
    subject: str
    list_ids: list[str]
    created_at: datetime
    sent_at: datetime
    tracking: list[Tracking] = field(default_factory=list)
    status: str = "Done"

    def wire(self) -> dict[str, Any]:
        return {
            "campaign_id": self.id,
            "name": self.name,
            "current_status": self.status,
            "type": "NEWSLETTER",
            "type_code": 10,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.sent_at),
        }

    def counts(self) -> dict[str, int]:
        """StatsEmail: ``em_opens``/``em_clicks`` count unique contacts, the ``_all`` ones every event."""
        by_kind: dict[str, list[Tracking]] = {}
        for event in self.tracking:
            by_kind.setdefault(event.kind, []).append(event)

        def unique(kind: str) -> int:
            return len({e.contact_id for e in by_kind.get(kind, [])})

        sends = unique("em_sends")
        opened = unique("em_opens")
        return {
            "em_sends": sends,
            "em_opens": opened,
            "em_opens_all": len(by_kind.get("em_opens", [])),
            "em_clicks": unique("em_clicks"),
            "em_clicks_all": len(by_kind.get("em_clicks", [])),
            "em_bounces": unique("em_bounces"),
            "em_optouts": unique("em_optouts"),
            "em_forwards": 0,
            "em_not_opened": max(0, sends - opened - unique("em_bounces")),
        }
