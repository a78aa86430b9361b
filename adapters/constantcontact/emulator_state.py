"""The in-memory Constant Contact account behind the emulator: all its behaviour, no HTTP.

The HTTP layer (``emulator.py``, ``emulator_routes.py``, ``emulator_oauth.py``) parses requests, renders
JSON and maps ``ApiError`` to v3's error array; everything the account *does* is here, in one
``ConstantContactState`` that tests inspect and steer: contacts keyed by case-insensitive email with
their consent (``permission_to_send``, ``opt_out_source``), contact lists (names unique, a cap per
account), custom fields (at most 100), bulk activities that reach a terminal state after some polls and
only then apply their rows (``emulator_activities.py``), email campaigns with tracking, OAuth grants
with expiring access tokens and rotating refresh tokens, and the 4-a-second, 10,000-a-day call budget.
Time comes only from the injected monotonic ``clock``; randomness only from ``state.rng``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from adapters.constantcontact.emulator_activities import apply_activity
from adapters.constantcontact.emulator_data import (
    SCALARS,
    BulkActivity,
    Contact,
    ContactList,
    CustomField,
    EmailCampaign,
    custom_value,
    field_name,
    valid_email,
)
from adapters.constantcontact.emulator_generate import SendShares, simulate_send
from adapters.constantcontact.emulator_grants import Grants
from adapters.emulation.accounts import EmulatedAccount

FOUR_MB = 4 * 1024 * 1024


class ApiError(Exception):
    """A refusal the app renders as v3's ``[{"error_key": ..., "error_message": ...}]``."""

    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status, self.key, self.message = status, key, message


@dataclass(frozen=True)
class Knobs:
    """Account settings and the account's own faults (activities, rows). Swap at runtime with
    ``state.tune(...)``. Faults any HTTP API has (errors, drops, timeouts, cut JSON, latency) are the
    shared fault layer's (``adapters.emulation``)."""

    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"
    access_ttl: float = 86_400.0  # seconds an access token lives
    list_limit: int = 1000
    custom_field_limit: int = 100
    max_queued_activities: int = 1000
    max_import_bytes: int = FOUR_MB  # bytes of a JSON import body read; the rest is dropped
    rate_limited: bool = True
    calls_per_second: int = 4
    calls_per_day: int = 10_000
    activity_polls: int = 2  # polls answering initialized/processing before the terminal state
    activity_outcome: str = "completed"  # terminal state forced on new activities
    activity_stalls: bool = False  # new activities never finish
    activity_fail_share: float = 0.0  # share of new activities that end failed, their rows not applied
    activity_stall_share: float = 0.0  # share of new activities that stay processing for ever
    row_fault_share: float = 0.0  # share of otherwise good import rows refused with an error


class ConstantContactState(EmulatedAccount[Knobs]):
    """One Constant Contact account, in memory."""

    job_fault_knobs: ClassVar[Mapping[str, str]] = {
        "job_fail": "activity_fail_share",
        "job_stall": "activity_stall_share",
    }

    def __init__(
        self,
        knobs: Knobs | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        started_at: datetime | None = None,
    ) -> None:
        super().__init__(knobs or Knobs(), clock=clock, seed=seed, started_at=started_at)
        self.contacts: dict[str, Contact] = {}
        self.by_email: dict[str, str] = {}  # lower-cased email -> contact id
        self.lists: dict[str, ContactList] = {}
        self.custom_fields: dict[str, CustomField] = {}
        self.activities: dict[str, BulkActivity] = {}
        self.campaigns: dict[str, EmailCampaign] = {}
        self.grants = Grants(self)
        self.second: tuple[int, int] = (0, 0)  # (whole second, calls admitted in it)
        self.day: tuple[str, int] = ("", 0)  # (UTC date, calls admitted on it)

    # -- tokens, budget -----------------------------------------------------------------------------
    def token(self) -> str:
        return secrets.token_urlsafe(32)

    def admit(self) -> bool:
        """Count one API call against the per-second and per-day budgets; False when over either."""
        if not self.knobs.rate_limited:
            return True
        second, day = int(self.clock()), self.now().date().isoformat()
        in_second = self.second[1] if self.second[0] == second else 0
        in_day = self.day[1] if self.day[0] == day else 0
        if in_second >= self.knobs.calls_per_second or in_day >= self.knobs.calls_per_day:
            return False
        self.second, self.day = (second, in_second + 1), (day, in_day + 1)
        return True

    # -- contacts -----------------------------------------------------------------------------------
    def contact(self, contact_id: str) -> Contact:
        found = self.contacts.get(contact_id)
        if found is None:
            raise ApiError(404, "contacts.api.not.found", f"Contact {contact_id} not found.")
        return found

    def contact_by_email(self, email: str) -> Contact | None:
        cid = self.by_email.get(email.strip().lower())
        return None if cid is None else self.contacts[cid]

    def add_contact(self, email: str, *, created: datetime | None = None, source: str = "Account") -> Contact:
        """Store a new contact as is (no checks): for seeding and for the checked paths."""
        moment = created or self.now()
        contact = Contact(
            self.new_uuid(), email.strip(), moment, moment, opt_in_date=moment, create_source=source
        )
        self.contacts[contact.id] = contact
        self.by_email[contact.email.lower()] = contact.id
        return contact

    def touch(self, contact: Contact) -> None:
        contact.updated_at = max(self.now(), contact.updated_at)

    def unsubscribe(
        self, contact: Contact, source: str, reason: str = "", when: datetime | None = None
    ) -> None:
        """Opt a contact out; an earlier opt-out keeps its source and date."""
        if contact.permission == "unsubscribed":
            return
        moment = when or self.now()
        contact.permission, contact.opt_out_source = "unsubscribed", source
        contact.opt_out_date, contact.opt_out_reason = moment, reason
        contact.updated_at = max(contact.updated_at, moment)

    def set_permission(self, contact: Contact, permission: str, source: str) -> None:
        """A PUT's ``permission_to_send``: an opt-out, or a re-add the vendor allows (never over the
        contact's own opt-out)."""
        if permission == contact.permission or permission not in _SETTABLE:
            return
        if permission == "unsubscribed":
            self.unsubscribe(contact, "Account" if source == "Account" else "Contact")
            return
        if contact.permission == "unsubscribed" and contact.opt_out_source == "Contact":
            raise ApiError(
                409,
                "contacts.api.conflict",
                "The contact unsubscribed themselves: only they can opt back in (sign-up form or "
                "the confirmation email of PUT /contacts/resubscribe).",
            )
        contact.permission, contact.opt_out_source = permission, None
        contact.opt_out_date = contact.opt_out_reason = None
        contact.opt_in_date = self.now()

    def custom_values(self, pairs: list[Any]) -> dict[str, str | None]:
        """``custom_fields`` of a POST or PUT as {field id: value}; unknown ids are a 400."""
        out: dict[str, str | None] = {}
        for item in pairs:
            if not isinstance(item, dict):
                raise ApiError(400, "contacts.api.validation.error", "custom_fields must be objects.")
            known = self.custom_fields.get(str(item.get("custom_field_id")))
            if known is None:
                raise ApiError(400, "contacts.api.validation.error", "custom_field_id is not a custom field.")
            try:
                out[known.id] = custom_value(known.type, item.get("value"))
            except ValueError as wrong:
                raise ApiError(400, "contacts.api.validation.error", f"{known.name}: {wrong}") from None
        return out

    def create_contact(self, body: Mapping[str, Any]) -> Contact:
        """``POST /contacts``: a new address only (409 when it ever existed, even deleted)."""
        address = body.get("email_address") or {}
        email = str(address.get("address") or "").strip() if isinstance(address, dict) else ""
        if not valid_email(email):
            raise ApiError(400, "contacts.api.validation.error", f"Email address {email!r} is not valid.")
        if self.contact_by_email(email) is not None:
            raise ApiError(409, "contacts.api.conflict", f"Email {email} already exists.")
        source = str(body.get("create_source") or "")
        if source not in ("Contact", "Account"):
            raise ApiError(400, "contacts.api.validation.error", "create_source must be Contact or Account.")
        values = self.custom_values(list(body.get("custom_fields") or []))
        contact = self.add_contact(email, source=source)
        contact.scalars = {k: str(body[k]) for k in SCALARS if body.get(k)}
        contact.custom = {k: v for k, v in values.items() if v is not None}
        contact.lists = dict.fromkeys(self.known_lists(body.get("list_memberships") or []))
        self.set_permission(contact, str(address.get("permission_to_send") or "implicit"), source)
        return contact

    def put_contact(self, contact_id: str, body: Mapping[str, Any]) -> Contact:
        """``PUT /contacts/{id}``: scalars replaced (absent ones cleared); sub-resources replaced only
        when given; a deleted contact is revived."""
        contact = self.contact(contact_id)
        source = str(body.get("update_source") or "")
        if source not in ("Contact", "Account"):
            raise ApiError(400, "contacts.api.validation.error", "update_source must be Contact or Account.")
        address = body.get("email_address") or {}
        if not isinstance(address, dict):
            raise ApiError(400, "contacts.api.validation.error", "email_address must be an object.")
        if "custom_fields" in body:
            values = self.custom_values(list(body.get("custom_fields") or []))
            contact.custom = {k: v for k, v in values.items() if v is not None}
        if "list_memberships" in body:
            contact.lists = dict.fromkeys(self.known_lists(body.get("list_memberships") or []))
        if address.get("permission_to_send"):
            self.set_permission(contact, str(address["permission_to_send"]), source)
        contact.scalars = {k: str(body[k]) for k in SCALARS if body.get(k)}
        contact.update_source, contact.deleted_at = source, None
        self.touch(contact)
        return contact

    def sign_up(self, body: Mapping[str, Any]) -> tuple[Contact, bool]:
        """``POST /contacts/sign_up_form``: create or update by email; appends lists and custom fields.
        The contact gave their own permission, so an opt-out of any source is lifted."""
        email = str(body.get("email_address") or "").strip()
        if not valid_email(email):
            raise ApiError(400, "contacts.api.validation.error", f"Email address {email!r} is not valid.")
        lists = self.known_lists(body.get("list_memberships") or [])
        if not lists:
            raise ApiError(400, "contacts.api.validation.error", "list_memberships needs 1 to 50 list ids.")
        values = self.custom_values(list(body.get("custom_fields") or []))
        contact = self.contact_by_email(email)
        created = contact is None
        contact = contact or self.add_contact(email, source="Contact")
        contact.scalars.update({k: str(body[k]) for k in SCALARS if body.get(k)})
        contact.custom.update({k: v for k, v in values.items() if v is not None})
        contact.lists.update(dict.fromkeys(lists))
        if contact.permission == "unsubscribed":
            contact.opt_out_source = None
        contact.permission, contact.deleted_at = "explicit", None
        self.touch(contact)
        return contact, created

    def delete_contact(self, contact_id: str) -> None:
        contact = self.contact(contact_id)
        if contact.deleted_at is None:
            contact.deleted_at = contact.updated_at = max(self.now(), contact.updated_at)
            contact.lists.clear()

    def visible(self, contact: Contact, statuses: frozenset[str]) -> bool:
        """Whether ``GET /contacts?status=`` shows the contact (default: every contact not deleted)."""
        if "all" in statuses:
            return True
        if contact.deleted_at is not None:
            return "deleted" in statuses
        if not statuses:
            return True
        active = contact.permission in ("explicit", "implicit", "pending_confirmation")
        return contact.permission in statuses or ("active" in statuses and active)

    # -- lists --------------------------------------------------------------------------------------
    def contact_list(self, list_id: str) -> ContactList:
        if list_id not in self.lists:
            raise ApiError(404, "contacts.api.not.found", f"List {list_id} not found.")
        return self.lists[list_id]

    def known_lists(self, ids: list[Any]) -> list[str]:
        if len(ids) > 50:
            raise ApiError(400, "contacts.api.validation.error", "At most 50 list ids.")
        for list_id in ids:
            self.contact_list(str(list_id))
        return [str(i) for i in ids]

    def create_list(self, name: str, favorite: bool = False, description: str = "") -> ContactList:
        name = name.strip()
        self._check_new("list name", name, 255, [x.name for x in self.lists.values()], self.knobs.list_limit)
        moment = self.now()
        made = ContactList(self.new_uuid(), name, moment, moment, favorite, description)
        self.lists[made.id] = made
        return made

    def _check_new(self, what: str, name: str, longest: int, taken: list[str], limit: int) -> None:
        """A new list's or custom field's name: 1 to ``longest`` characters, not ``taken`` (case
        ignored), and the account below its ``limit`` of them."""
        if not name or len(name) > longest:
            raise ApiError(
                400, "contacts.api.validation.error", f"The {what} must be 1 to {longest} characters."
            )
        if name.lower() in {other.lower() for other in taken}:
            raise ApiError(409, "contacts.api.conflict", f"The {what} {name} is already in use.")
        if len(taken) >= limit:
            raise ApiError(
                400, "contacts.api.validation.error", f"The account has its limit of {limit}: no more."
            )

    def members(self, list_id: str) -> int:
        return sum(1 for c in self.contacts.values() if list_id in c.lists and c.deleted_at is None)

    # -- custom fields ------------------------------------------------------------------------------
    def create_custom_field(self, label: str, type_: str) -> CustomField:
        label = label.strip()
        if type_ not in ("string", "date", "number"):
            raise ApiError(
                400, "contacts.api.validation.error", f"type {type_!r} is not a custom field type."
            )
        self._check_new("custom field label", label, 50, [], 1)
        name = field_name(label)
        names = [f.name for f in self.custom_fields.values()]
        self._check_new("custom field name", name, 50, names, self.knobs.custom_field_limit)
        made = CustomField(self.new_uuid(), label, name, type_, self.now())
        self.custom_fields[made.id] = made
        return made

    def field_by_name(self, name: str) -> CustomField | None:
        return next((f for f in self.custom_fields.values() if f.name.lower() == name.lower()), None)

    # -- bulk activities ----------------------------------------------------------------------------
    def submit(self, kind: str, payload: dict[str, Any]) -> BulkActivity:
        queued = sum(1 for a in self.activities.values() if a.queued)
        if queued >= self.knobs.max_queued_activities:
            raise ApiError(
                429, "too_many_requests", "You exceeded 1,000 queued activities for this user account."
            )
        k, fault = self.knobs, self.draw_job_fault()
        outcome = "failed" if fault == "job_fail" else k.activity_outcome
        stalls = k.activity_stalls or fault == "job_stall"
        job = BulkActivity(self.new_uuid(), kind, self.now(), payload, k.activity_polls, outcome, stalls)
        self.activities[job.id] = job
        return job

    def poll_activity(self, activity_id: str) -> BulkActivity:
        """Each poll moves the activity on: processing, then its terminal state (rows applied then)."""
        job = self.activities.get(activity_id)
        if job is None:
            raise ApiError(404, "activities.api.not.found", f"Activity {activity_id} not found.")
        job.polls += 1
        if job.queued:
            if job.started_at is None:
                job.state, job.started_at = "processing", self.now()
            if job.polls > job.polls_needed and not job.stalled:
                apply_activity(self, job)
                job.completed_at = self.now()
        return job

    # -- email campaigns ----------------------------------------------------------------------------
    def add_campaign(
        self, name: str, *, list_ids: list[str], sent_at: datetime | None = None, subject: str | None = None
    ) -> EmailCampaign:
        for list_id in list_ids:
            self.contact_list(list_id)
        moment = sent_at or self.now()
        campaign = EmailCampaign(
            self.new_uuid(), self.new_uuid(), name, subject or f"News: {name}", list(list_ids), moment, moment
        )
        self.campaigns[campaign.id] = campaign
        return campaign

    def generate_activity(self, campaign_id: str, shares: SendShares | None = None) -> int:
        """Send the campaign to its lists' subscribed members (seeded by ``state.rng``): sends, opens,
        clicks, bounces with codes, opt-outs. Returns the recipients added."""
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise KeyError(campaign_id)
        return simulate_send(self, campaign, self.rng, shares or SendShares())

    def campaign_by_activity(self, activity_id: str) -> EmailCampaign:
        found = next((c for c in self.campaigns.values() if c.activity_id == activity_id), None)
        if found is None:
            raise ApiError(404, "emails.api.not.found", f"Campaign activity {activity_id} not found.")
        return found


_SETTABLE = frozenset({"explicit", "implicit", "not_set", "unsubscribed"})
