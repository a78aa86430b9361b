"""The in-memory Dotdigital account behind the emulator.

The emulator's HTTP layer (``emulator.py``, ``emulator_routes.py``, ``emulator_wire.py``) only parses
requests, renders JSON and maps errors; everything the account *does* lives here, in one
``DotdigitalState`` that tests can inspect and steer: contacts (keyed by case-insensitive email), address
books with their members and the contacts unsubscribed from each alone (``emulator_book_unsubscribes.py``),
data fields with the per-type limits, account-wide suppressions with their reasons, bulk imports that
finish after some polls and apply their rows only then (applying them is ``emulator_imports.py``'s job),
bulk deletions, sent campaigns with per-contact activity, and the call budget of the two rate-limit
schemes. Time comes only from the injected monotonic ``clock``; wall-clock dates are derived from it.
Randomness comes only from ``state.rng``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from adapters.dotdigital import emulator_book_unsubscribes as book_unsubscribes
from adapters.dotdigital.emulator_data import (
    DATA_FIELD_TYPES,
    NEVER_RESUBSCRIBED,
    SUPPRESSED,
    ActivityShares,
    AddressBook,
    Campaign,
    Contact,
    ContactImport,
    DataField,
    Deletion,
    Suppression,
    coerce,
    simulate_activity,
    valid_email,
    valid_field_name,
)
from adapters.dotdigital.emulator_imports import apply_import
from adapters.emulation.accounts import EmulatedAccount

if TYPE_CHECKING:
    from adapters.dotdigital.emulator_v3 import ContactsImportV3

RESERVED_BOOK_NAMES = frozenset({"test", "all contacts"})


class ApiError(Exception):
    """A refusal the app renders as v2's ``{"message": "<text> ERROR_CODE"}`` with an HTTP status, or,
    with ``v3_code``, as v3's ``{"errorCode": v3_code, "description": message}``."""

    def __init__(self, status: int, message: str, *, v3_code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.v3_code = status, message, v3_code


@dataclass(frozen=True)
class Knobs:
    """Account settings and the account's own faults (imports, rows). Swap at runtime with
    ``state.tune(...)``. Faults any HTTP API has (errors, drops, timeouts, cut JSON, latency) are the
    shared fault layer's (``adapters.emulation``)."""

    api_user: str = "apiuser-emulator@apiconnector.com"
    api_password: str = "emulator-password"
    api_endpoint: str = "https://r1-api.dotdigital.com"
    account_id: int = 417
    address_book_limit: int = 100
    data_field_limits: Mapping[str, int] = field(
        default_factory=lambda: {"String": 246, "Numeric": 50, "Date": 50, "Boolean": 50}
    )
    contact_limit: int | None = None  # imports that would pass it end ExceedsAllowedContactLimit
    max_active_imports: int = 25
    rate_scheme: Literal["flat", "tiered", "none"] = "flat"
    flat_calls_per_hour: int = 2000
    tiered_calls_per_minute: int = 500
    tiered_scope: str = "lowCallRate"
    import_polls: int = 2  # polls answering NotFinished before the terminal status
    import_outcome: str = "Finished"  # terminal status forced on new imports (Failed, RejectedByWatchdog...)
    import_stalls: bool = False  # new imports never finish
    import_fail_share: float = 0.0  # share of new imports that end Failed, their rows not applied
    import_stall_share: float = 0.0  # share of new imports that never finish
    row_fault_share: float = 0.0  # share of otherwise good import rows rejected with reason Failed
    deletion_polls: int = 1
    allow_unsuppress: bool = False  # let resubscribe lift complaints and self-unsubscribes


class DotdigitalState(EmulatedAccount[Knobs]):
    """One Dotdigital account, in memory. All behaviour of the emulator; no HTTP here."""

    job_fault_knobs: ClassVar[Mapping[str, str]] = {
        "job_fail": "import_fail_share",
        "job_stall": "import_stall_share",
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
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}  # lower-cased email -> contact id
        self.address_books: dict[int, AddressBook] = {}
        self.data_fields: dict[str, DataField] = {}  # upper-cased name -> field
        self.suppressions: dict[int, Suppression] = {}  # contact id -> its current suppression
        self.imports: dict[str, ContactImport] = {}
        self.v3_imports: dict[str, ContactsImportV3] = {}  # Contacts API v3 imports (emulator_v3.py)
        self.deletions: dict[str, Deletion] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.rate_window: tuple[float, int] = (self._t0, 0)  # (start, calls admitted), kept by the app
        self._ids = {"contact": 0, "book": 0, "campaign": 0}

    # -- ids ----------------------------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # -- contacts -----------------------------------------------------------------------------------
    def contact_by_email(self, email: str) -> Contact | None:
        cid = self.by_email.get(email.strip().lower())
        return None if cid is None else self.contacts[cid]

    def find_contact(self, key: str) -> Contact:
        """``GET /v2/contacts/{email|id}``: suppressed contacts are not returned by id."""
        found = self.contacts.get(int(key)) if key.isdigit() else self.contact_by_email(key)
        if found is None or (key.isdigit() and found.status in SUPPRESSED):
            raise ApiError(404, "Error: ERROR_CONTACT_NOT_FOUND")
        return found

    def add_contact(self, email: str, *, created: datetime | None = None) -> Contact:
        """Store a new contact as is (no checks): for seeding and for the checked paths below."""
        moment = created or self.now()
        contact = Contact(self._next("contact"), email.strip(), created=moment, modified=moment)
        self.contacts[contact.id] = contact
        self.by_email[contact.email.lower()] = contact.id
        return contact

    def typed_fields(self, pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            known = self.data_fields.get(key.upper())
            if known is None:
                raise ApiError(400, f"Data field '{key}' does not exist. ERROR_DATAFIELD_NOTFOUND")
            out[known.name] = typed(known.type, value)
        return out

    def upsert_contact(
        self, email: str, data: Mapping[str, Any], *, opt_in: str | None = None, email_type: str | None = None
    ) -> tuple[Contact, bool]:
        """``POST /v2/contacts`` creates or updates by email; suppressed contacts are refused."""
        if not valid_email(email.strip()):
            raise ApiError(400, f"Email is not valid: {email}. ERROR_CONTACT_INVALID")
        values = self.typed_fields(data.items())
        contact = self.contact_by_email(email)
        if contact is not None and contact.status in SUPPRESSED:
            raise ApiError(400, "Contact is suppressed. ERROR_CONTACT_SUPPRESSED")
        created = contact is None
        contact = contact or self.add_contact(email)
        contact.data.update(values)
        contact.opt_in_type = opt_in or contact.opt_in_type
        contact.email_type = email_type or contact.email_type
        contact.modified = self.now()
        return contact, created

    def delete_contact(self, contact_id: int) -> None:
        contact = self.contacts.pop(contact_id, None)
        if contact is None:
            raise ApiError(404, "Error: ERROR_CONTACT_NOT_FOUND")
        del self.by_email[contact.email.lower()]
        self.suppressions.pop(contact_id, None)
        for book in self.address_books.values():
            book.members.pop(contact_id, None)
            book.unsubscribed.pop(contact_id, None)

    def modified_since(self, since: datetime) -> list[Contact]:
        return sorted((c for c in self.contacts.values() if c.modified >= since), key=lambda c: c.modified)

    # -- address books ------------------------------------------------------------------------------
    def book(self, book_id: int) -> AddressBook:
        if book_id not in self.address_books:
            raise ApiError(404, "Address book not found. ERROR_ADDRESSBOOK_NOT_FOUND")
        return self.address_books[book_id]

    def _check_book_name(self, name: str, book_id: int | None = None) -> str:
        name = name.strip()
        if not name or len(name) > 128:
            raise ApiError(400, "Address book name must be 1 to 128 characters. ERROR_ADDRESSBOOK_INVALID")
        taken = {b.name.lower() for b in self.address_books.values() if b.id != book_id}
        if name.lower() in taken | RESERVED_BOOK_NAMES:
            raise ApiError(400, f"An address book named '{name}' already exists. ERROR_ADDRESSBOOK_DUPLICATE")
        return name

    def create_address_book(self, name: str, visibility: str = "Private") -> AddressBook:
        name = self._check_book_name(name)
        if len(self.address_books) >= self.knobs.address_book_limit:
            raise ApiError(400, "Address book limit exceeded. ERROR_ADDRESSBOOK_LIMITEXCEEDED")
        book = AddressBook(self._next("book"), name, _visibility(visibility))
        self.address_books[book.id] = book
        return book

    def update_address_book(self, book_id: int, name: str, visibility: str | None) -> AddressBook:
        book = self.book(book_id)
        book.name = self._check_book_name(name, book_id)
        book.visibility = _visibility(visibility or book.visibility)
        return book

    def members(self, book_id: int) -> list[Contact]:
        return [self.contacts[cid] for cid in self.book(book_id).members]

    def add_member(self, book_id: int, contact: Contact) -> None:
        self.book(book_id).members[contact.id] = None
        contact.modified = self.now()

    def remove_member(self, book_id: int, contact_id: int) -> None:
        if self.book(book_id).members.pop(contact_id, 0) is not None and contact_id in self.contacts:
            self.contacts[contact_id].modified = self.now()

    def books_of(self, contact_id: int) -> list[AddressBook]:
        return [b for b in self.address_books.values() if contact_id in b.members]

    def start_deletion(self, book_id: int, contact_ids: list[int]) -> Deletion:
        self.book(book_id)
        job = Deletion(
            str(uuid.UUID(int=self.rng.getrandbits(128))), book_id, contact_ids, self.knobs.deletion_polls
        )
        self.deletions[job.id] = job
        return job

    def poll_deletion(self, job_id: str) -> Deletion:
        job = self.deletions.get(job_id.lower())
        if job is None:
            raise ApiError(404, "Deletion request not found. ERROR_DELETION_NOT_FOUND")
        job.polls += 1
        if job.status == "Started" and job.polls >= job.polls_needed:
            for cid in job.contact_ids:
                if job.book_id in self.address_books:
                    self.remove_member(job.book_id, cid)
            job.status = "Completed"
        return job

    # -- data fields --------------------------------------------------------------------------------
    def create_data_field(
        self, name: str, type_: str, visibility: str = "Private", default: Any = None
    ) -> DataField:
        if not valid_field_name(name or ""):
            raise ApiError(
                400, "Data field names are 1 to 20 letters, digits, - or _. ERROR_DATAFIELD_INVALID"
            )
        if type_ not in DATA_FIELD_TYPES:
            raise ApiError(400, f"Unknown data field type '{type_}'. ERROR_DATAFIELD_INVALID")
        if name.upper() in self.data_fields:
            raise ApiError(400, "Field already exists. ERROR_NON_UNIQUE_DATAFIELD")
        in_use = sum(1 for f in self.data_fields.values() if f.type == type_)
        if in_use >= self.knobs.data_field_limits.get(type_, 0):
            raise ApiError(400, f"{type_} data field limit exceeded. ERROR_DATAFIELD_LIMITEXCEEDED")
        created = DataField(name.upper(), type_, _visibility(visibility), typed(type_, default))
        self.data_fields[created.name] = created
        return created

    def delete_data_field(self, name: str) -> None:
        if self.data_fields.pop(name.upper(), None) is None:
            raise ApiError(404, "Data field not found. ERROR_DATAFIELD_NOTFOUND")
        for contact in self.contacts.values():
            contact.data.pop(name.upper(), None)

    # -- suppressions -------------------------------------------------------------------------------
    def suppress(
        self, contact: Contact, reason: str, *, self_service: bool = False, when: datetime | None = None
    ) -> Suppression:
        """Account-wide suppression; an existing one keeps its original reason and date."""
        existing = self.suppressions.get(contact.id)
        if existing is not None:
            return existing
        moment = when or self.now()
        entry = Suppression(contact.id, reason, moment, self_service)
        self.suppressions[contact.id] = entry
        contact.status, contact.modified = reason, max(contact.modified, moment)
        return entry

    def unsubscribe(self, email: str) -> Suppression:
        if not valid_email(email.strip()):
            raise ApiError(400, f"Email is not valid: {email}. ERROR_CONTACT_INVALID")
        contact = self.contact_by_email(email) or self.add_contact(email)
        return self.suppress(contact, "Unsubscribed")

    def unsubscribe_from_book(self, book_id: int, email: str) -> Suppression:
        """``POST /v2/address-books/{id}/contacts/unsubscribe``: the contact leaves that book alone and
        stays out of it (``emulator_book_unsubscribes.py``); an address the account lacks is refused."""
        contact = self.contact_by_email(email)
        if contact is None:
            raise ApiError(404, "Error: ERROR_CONTACT_NOT_FOUND")
        return book_unsubscribes.unsubscribe(self, self.book(book_id), contact)

    def suppressed_since(self, since: datetime, reasons: frozenset[str] = SUPPRESSED) -> list[Suppression]:
        hits = [s for s in self.suppressions.values() if s.date_removed >= since and s.reason in reasons]
        return sorted(hits, key=lambda s: (s.date_removed, s.contact_id))

    def resubscribe(self, email: str, data: Mapping[str, Any]) -> tuple[str, Contact | None]:
        contact = self.contact_by_email(email)
        if contact is None:
            contact, _ = self.upsert_contact(email, data)
            return "ContactAdded", contact
        entry = self.suppressions.get(contact.id)
        if entry is not None:
            blocked = entry.reason in NEVER_RESUBSCRIBED or (
                entry.reason == "Unsubscribed" and entry.self_service
            )
            if blocked and not self.knobs.allow_unsuppress:
                return "ContactCannotBeUnsuppressed", contact
            del self.suppressions[contact.id]
            contact.status = "Subscribed"
        contact.data.update(self.typed_fields(data.items()))
        contact.modified = self.now()
        return "ContactAdded", contact

    # -- bulk imports -------------------------------------------------------------------------------
    def submit_import(self, book_id: int | None, payload: bytes | None) -> ContactImport:
        if book_id is not None:
            self.book(book_id)
        if self.active_imports() >= self.knobs.max_active_imports:
            raise ApiError(400, "Too many imports are in progress. ERROR_IMPORT_TOOMANYACTIVEIMPORTS")
        outcome, stalled = self.import_fate()
        job_id = self.new_uuid()
        job = ContactImport(job_id, book_id, payload, self.knobs.import_polls, outcome, stalled)
        self.imports[job.id] = job
        return job

    def import_fate(self) -> tuple[str, bool]:
        """A new import's terminal status and whether it stalls: forced by the knobs, or drawn from
        the shares (a drawn failure is ``Failed``, a status v2 and v3 both have)."""
        k, fault = self.knobs, self.draw_job_fault()
        if fault == "job_fail":
            return "Failed", k.import_stalls
        return k.import_outcome, k.import_stalls or fault == "job_stall"

    def active_imports(self) -> int:
        """v2 and v3 imports still running: they share the account's limit."""
        statuses = [job.status for job in self.imports.values()]
        statuses += [job.status for job in self.v3_imports.values()]
        return statuses.count("NotFinished")

    def import_job(self, import_id: str) -> ContactImport:
        job = self.imports.get(import_id.lower())
        if job is None:
            raise ApiError(404, "Import not found. ERROR_IMPORT_NOT_FOUND")
        return job

    def poll_import(self, import_id: str) -> ContactImport:
        """Each poll moves the job on; it reaches its terminal status after ``polls_needed`` polls."""
        job = self.import_job(import_id)
        job.polls += 1
        if job.status == "NotFinished" and not job.stalled and job.polls > job.polls_needed:
            apply_import(self, job)
        return job

    # -- campaigns ----------------------------------------------------------------------------------
    def campaign(self, campaign_id: int) -> Campaign:
        if campaign_id not in self.campaigns:
            raise ApiError(404, "Campaign not found. ERROR_CAMPAIGN_NOT_FOUND")
        return self.campaigns[campaign_id]

    def add_campaign(
        self, name: str, *, book_ids: list[int], sent_at: datetime | None = None, subject: str | None = None
    ) -> Campaign:
        for book_id in book_ids:
            self.book(book_id)
        campaign = Campaign(
            self._next("campaign"),
            name,
            subject or f"News: {name}",
            "Listsync Demo",
            sent_at or self.now(),
            list(book_ids),
        )
        self.campaigns[campaign.id] = campaign
        return campaign

    def generate_activity(self, campaign_id: int, shares: ActivityShares | None = None) -> int:
        """Send the campaign to its books' members (seeded by ``state.rng``): opens, clicks, bounces,
        opt-outs; hard bounces suppress the contact as HardBounced. Returns the recipients added."""
        return simulate_activity(self, self.campaign(campaign_id), self.rng, shares or ActivityShares())

    def campaigns_with_activity_since(self, since: datetime) -> list[Campaign]:
        return [
            c
            for c in self.campaigns.values()
            if any(a.last_event and a.last_event >= since for a in c.activity.values())
        ]


def typed(type_: str, value: Any) -> Any:
    try:
        return coerce(type_, value)
    except ValueError:
        raise ApiError(
            400, f"'{value}' is not a valid {type_} value. ERROR_DATAFIELD_INVALID_VALUE"
        ) from None


def _visibility(value: str) -> str:
    if value not in ("Private", "Public"):
        raise ApiError(400, f"Visibility must be Private or Public, not '{value}'. ERROR_PARAMETER_INVALID")
    return value
