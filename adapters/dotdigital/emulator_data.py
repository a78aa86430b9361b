"""The values the Dotdigital emulator deals in, and seeded generation of a realistic account.

Two things live here because both are about *data*, not behaviour: the vendor's value rules (what an email,
a data-field name, a Numeric/Date/Boolean value and an import file must look like; the enums the spec
publishes), and ``generate``, which fills a ``DotdigitalState`` with people, address books, data fields,
suppressions with mixed reasons, and sent campaigns with per-contact activity. Generation draws only on a
``random.Random(seed)`` so the same seed gives the same account.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from adapters.dotdigital.rows import VENDOR_TYPES
from engine.records import Record
from engine.ruleset import FieldType

if TYPE_CHECKING:
    from adapters.dotdigital.emulator_state import DotdigitalState

# ApiContactStatuses that take a contact out of mailing, account-wide.
SUPPRESSED = frozenset(
    {"Unsubscribed", "HardBounced", "IspComplained", "Suppressed", "MailBlocked", "DirectComplaint"}
    | {"DomainSuppression", "SharedSuppression", "NoMxRecord"}
)
NEVER_RESUBSCRIBED = frozenset({"IspComplained", "DirectComplaint"})
IMPORT_TERMINAL = frozenset(
    {"Finished", "RejectedByWatchdog", "InvalidFileFormat", "Failed", "ExceedsAllowedContactLimit"}
)
DATA_FIELD_TYPES = ("String", "Numeric", "Date", "Boolean")
REPORT_KEYS = (
    "newContacts",
    "updatedContacts",
    "globallySuppressed",
    "invalidEntries",
    "duplicateEmails",
    "blocked",
    "unsubscribed",
    "hardBounced",
    "softBounced",
    "ispComplaints",
    "mailBlocked",
    "domainSuppressed",
    "pendingDoubleOptin",
    "failures",
    "suppressedContacts",
)
# Which ApiContactImportReport counter a suppressed row adds to, besides globallySuppressed.
REPORT_KEY_BY_REASON = {
    "Unsubscribed": "unsubscribed",
    "HardBounced": "hardBounced",
    "IspComplained": "ispComplaints",
    "MailBlocked": "mailBlocked",
    "DomainSuppression": "domainSuppressed",
    "Suppressed": "suppressedContacts",
}
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,}$")
# The published rule (ReadMe reference): at most 20 characters, alphanumerics, hyphens and underscores.
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
_TRUE, _FALSE = frozenset({"true", "yes", "1", "y"}), frozenset({"false", "no", "0", "n"})


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_date(text: str) -> datetime:
    """Path dates: the spec says date-time, the ReadMe says date; both are accepted, naive means UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email.strip()))


def valid_field_name(name: str) -> bool:
    return bool(_FIELD_NAME.match(name))


def coerce(type_: str, value: Any) -> Any:
    """Give a data-field value its type (None for empty); raises ValueError for an unusable value."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) and type_ == "Boolean":
        return value
    text = str(value).strip()
    if type_ == "Numeric":
        number = float(text)
        return int(number) if number.is_integer() else number
    if type_ == "Boolean":
        if text.lower() not in _TRUE | _FALSE:
            raise ValueError(text)
        return text.lower() in _TRUE
    if type_ == "Date":
        return iso(parse_date(text))
    return text


def read_csv(payload: bytes | None) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of an import file, or None when it is not a CSV with an Email column."""
    if not payload:
        return None
    try:
        rows = [row for row in csv.reader(io.StringIO(payload.decode("utf-8-sig"), newline="")) if row]
    except (UnicodeDecodeError, csv.Error):
        return None
    if not rows or "email" not in [h.strip().lower() for h in rows[0]]:
        return None
    width = len(rows[0])
    return [h.strip() for h in rows[0]], [(r + [""] * width)[:width] for r in rows[1:]]


@dataclass
class Contact:
    id: int
    email: str
    created: datetime
    modified: datetime
    status: str = "Subscribed"
    opt_in_type: str = "Single"
    email_type: str = "Html"
    data: dict[str, Any] = field(default_factory=dict)  # data-field name (upper-case) -> typed value


@dataclass
class AddressBook:
    id: int
    name: str
    visibility: str = "Private"
    members: dict[int, None] = field(default_factory=dict)  # ordered set of contact ids
    # Contacts unsubscribed from this book alone, with when (``emulator_book_unsubscribes.py``).
    unsubscribed: dict[int, datetime] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "visibility": self.visibility,
            "contacts": len(self.members),
        }


@dataclass
class DataField:
    name: str
    type: str
    visibility: str = "Private"
    default: Any = None

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "visibility": self.visibility,
            "defaultValue": self.default,
        }


@dataclass
class Suppression:
    contact_id: int
    reason: str
    date_removed: datetime
    self_service: bool = False  # the contact unsubscribed themselves (link in an email)


@dataclass
class ContactImport:
    id: str
    book_id: int | None
    file: bytes | None  # None when the upload could not be decoded at all
    polls_needed: int
    outcome: str
    stalled: bool
    polls: int = 0
    status: str = "NotFinished"
    report: dict[str, int] | None = None
    faults: list[list[str]] = field(default_factory=list)  # rows of the report-faults CSV, header first


@dataclass
class Deletion:
    id: str
    book_id: int
    contact_ids: list[int]
    polls_needed: int
    polls: int = 0
    status: str = "Started"


@dataclass
class Activity:
    contact_id: int
    email: str
    opens: list[datetime] = field(default_factory=list)
    clicks: list[tuple[str, datetime]] = field(default_factory=list)
    hard_bounced: bool = False
    soft_bounced: bool = False
    unsubscribed: bool = False
    last_event: datetime | None = None


@dataclass
class Campaign:
    id: int
    name: str
    subject: str
    from_name: str
    date_sent: datetime
    book_ids: list[int]
    activity: dict[int, Activity] = field(default_factory=dict)


# -- seeded generation ------------------------------------------------------------------------------
_FIRST = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Freya", "Grace", "Sophia", "Noah", "Oliver",
    "George", "Arthur", "Leo", "Harry", "Oscar", "Jack", "Theo", "Muhammad", "Aoife", "Siobhan", "Priya",
    "Anil", "Zoe", "Chloe", "Ewan", "Callum", "Niamh", "Rhys", "Sian", "Dylan",
)  # fmt: skip
_LAST = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Wright",
    "Evans", "Robinson", "Thompson", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
    "Clarke", "O'Neill", "MacDonald", "Singh", "Khan", "Hughes", "Edwards", "Murphy",
)  # fmt: skip
_DOMAINS = ("example.com", "example.co.uk", "mail.example.org", "acme-widgets.example", "northwind.example")
_CITIES = ("London", "Manchester", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "Leicester")
_BOOKS = (
    "Spring Newsletter", "Webinar Attendees 2025", "Trade Show Leads", "VIP Customers", "Product Updates",
    "Renewals Q3", "Partner Programme", "Event: Customer Summit",
)  # fmt: skip
_FIELDS = (
    ("FIRSTNAME", "String"), ("LASTNAME", "String"), ("FULLNAME", "String"), ("CITY", "String"),
    ("CRM_ID", "String"), ("LEAD_SCORE", "Numeric"), ("LAST_PURCHASE", "Date"), ("IS_CUSTOMER", "Boolean"),
)  # fmt: skip
_REASONS = (
    "Unsubscribed",
    "Unsubscribed",
    "Unsubscribed",
    "HardBounced",
    "HardBounced",
    "IspComplained",
    "Suppressed",
)
_SENDS = ("this month's news", "new dates", "an offer for you", "what's coming up")
_URLS = (
    "https://www.example.com/",
    "https://www.example.com/pricing",
    "https://www.example.com/blog/launch",
    "https://events.example.com/register",
)


@dataclass(frozen=True)
class ActivityShares:
    """How a simulated send goes: shares of recipients who bounce, open, click (of openers), opt out."""

    hard_bounce: float = 0.03
    soft_bounce: float = 0.03
    open: float = 0.45
    click: float = 0.35
    unsubscribe: float = 0.02
    complaint: float = 0.005


class Synced(Protocol):
    """What an earlier integration put in the account from a CRM (`adapters.demos.earlier_sync`)."""

    @property
    def lists(self) -> Sequence[str]: ...  # address books it made and filled

    @property
    def fields(self) -> Mapping[str, FieldType]: ...  # data fields it made

    @property
    def contacts(self) -> Sequence[Record]: ...  # the CRM records it imported


def generate(
    state: DotdigitalState,
    *,
    seed: int,
    contacts: int = 250,
    address_books: int = 4,
    suppressed_share: float = 0.06,
    campaigns: int = 3,
    with_activity: bool = True,
    synced: Synced | None = None,
    now: datetime | None = None,
) -> None:
    """Fill ``state`` with a realistic account; the same seed always gives the same account.

    With `synced`, the account is one an earlier integration filled from a CRM (`fill_synced`), and
    `contacts` counts its contacts too; the rest are the account's own, in `address_books` books of
    its own. Each of its books had a campaign sent to it lately, besides the `campaigns` sent to the
    account's own books. `now` is when its history ends (the state's clock by default): accounts
    generated with one seed and `now` are equal to the second."""
    rng = random.Random(seed)
    now = now or state.now()
    for name, type_ in _FIELDS:
        if name not in state.data_fields:
            state.create_data_field(name, type_)
    taken = {name.lower() for name in synced.lists} if synced is not None else set()
    own = [name for name in _BOOKS if name.lower() not in taken]
    books = [state.create_address_book(name).id for name in rng.sample(own, min(address_books, len(own)))]
    filled = fill_synced(state, rng, synced, suppressed_share, now) if synced is not None else []
    made = len(synced.contacts) if synced is not None else 0
    while made < contacts:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"))
        email = f"{local.replace(chr(39), '')}{rng.randint(1, 999)}@{rng.choice(_DOMAINS)}"
        if rng.random() > 0.15:  # most stored lower-case; some keep the case the person typed
            email = email.lower()
        if state.contact_by_email(email) is not None:
            continue
        created = now - timedelta(days=rng.uniform(1, 400))
        contact = state.add_contact(email, created=created)
        purchase = iso(created + timedelta(days=rng.uniform(0, 30)))
        contact.data.update({
            "FIRSTNAME": first, "LASTNAME": last, "FULLNAME": f"{first} {last}", "CITY": rng.choice(_CITIES),
            "CRM_ID": f"PER-{rng.randint(10000, 99999)}", "LEAD_SCORE": rng.randint(0, 100),
            "LAST_PURCHASE": purchase, "IS_CUSTOMER": rng.random() < 0.4,
        })  # fmt: skip
        contact.opt_in_type = rng.choice(("Single", "Single", "Double", "Unknown"))
        for book_id in rng.sample(books, rng.randint(1, min(2, len(books)))) if books else ():
            state.book(book_id).members[contact.id] = None
        if rng.random() < suppressed_share:
            _suppress_since(state, rng, contact, created, now)
        made += 1
    for number in range(campaigns if books else 0):
        sent = now - timedelta(days=rng.uniform(1, 60))
        campaign = state.add_campaign(
            f"Campaign {number + 1}: {rng.choice(_BOOKS)}", book_ids=rng.sample(books, 1), sent_at=sent
        )
        if with_activity:
            simulate_activity(state, campaign, rng, ActivityShares(), now)
    for book in filled:
        # Lately, so that an activity backfill of a month or so still finds it.
        sent = now - timedelta(days=rng.uniform(1, 21))
        name = f"{book.name}: {rng.choice(_SENDS)}"
        campaign = state.add_campaign(name, book_ids=[book.id], sent_at=sent)
        if with_activity:
            simulate_activity(state, campaign, rng, ActivityShares(), now)


def fill_synced(
    state: DotdigitalState, rng: random.Random, synced: Synced, suppressed_share: float, now: datetime
) -> list[AddressBook]:
    """Make the data fields and address books of `synced` and import its contacts, as that earlier
    integration did: each with its data-field values, in its books, and unsubscribed if the CRM had
    opted it out. Since then `suppressed_share` of the others have been suppressed here (mostly
    unsubscribed, some hard bounces and complaints): opt-outs the CRM has not heard of. Returns the
    books."""
    for name, type_ in synced.fields.items():
        if name.upper() not in state.data_fields:
            state.create_data_field(name, VENDOR_TYPES[type_])
    books = {name: state.create_address_book(name) for name in synced.lists}
    for record in synced.contacts:
        created = now - timedelta(days=rng.uniform(30, 400))
        contact = state.add_contact(record.email, created=created)
        contact.data.update(state.typed_fields((k, v) for k, v in record.fields.items() if v is not None))
        for name in sorted(record.lists & books.keys()):
            books[name].members[contact.id] = None
        if record.opted_out:
            state.suppress(contact, "Unsubscribed", when=created)
        elif rng.random() < suppressed_share:
            _suppress_since(state, rng, contact, created, now)
    return list(books.values())


def _suppress_since(
    state: DotdigitalState, rng: random.Random, contact: Contact, created: datetime, now: datetime
) -> None:
    """Suppress `contact` at a moment between `created` and `now`, for a reason drawn as an account's
    are mixed; most who unsubscribe do it themselves (a link in an email), so cannot be resubscribed."""
    reason = rng.choice(_REASONS)
    when = created + (now - created) * rng.random()
    state.suppress(contact, reason, when=when, self_service=reason == "Unsubscribed" and rng.random() < 0.7)


def simulate_activity(
    state: DotdigitalState,
    campaign: Campaign,
    rng: random.Random,
    shares: ActivityShares,
    now: datetime | None = None,
) -> int:
    """Send ``campaign`` to its books' mailable members and record what each recipient did.

    Hard bounces and complaints suppress the contact account-wide, unsubscribes are self-service
    (so they cannot be resubscribed). Events fall between the send and `now` (the state's clock by
    default). Returns recipients added.
    """
    now = now or state.now()
    span = max((now - campaign.date_sent).total_seconds(), 60.0)

    def later(after: datetime) -> datetime:
        return min(now, after + timedelta(seconds=rng.uniform(30, span) * rng.random()))

    added = 0
    for book_id in campaign.book_ids:
        for contact in state.members(book_id):
            if contact.id in campaign.activity or contact.status in SUPPRESSED:
                continue
            act = Activity(contact.id, contact.email, last_event=campaign.date_sent)
            campaign.activity[contact.id] = act
            added += 1
            roll = rng.random()
            if roll < shares.hard_bounce:
                act.hard_bounced, act.last_event = True, later(campaign.date_sent)
                state.suppress(contact, "HardBounced", when=act.last_event)
                continue
            if roll < shares.hard_bounce + shares.soft_bounce:
                act.soft_bounced, act.last_event = True, later(campaign.date_sent)
                continue
            if rng.random() < shares.open:
                act.opens = sorted(later(campaign.date_sent) for _ in range(rng.randint(1, 4)))
                if rng.random() < shares.click:
                    clicks = [(rng.choice(_URLS), later(act.opens[0])) for _ in range(rng.randint(1, 3))]
                    act.clicks = sorted(clicks, key=lambda c: c[1])
            events = [*act.opens, *(when for _, when in act.clicks)]
            act.last_event = max(events, default=act.last_event)
            if rng.random() < shares.unsubscribe + shares.complaint:
                complained = rng.random() < shares.complaint / (shares.unsubscribe + shares.complaint)
                act.unsubscribed, act.last_event = True, later(act.last_event or campaign.date_sent)
                state.suppress(
                    contact,
                    "IspComplained" if complained else "Unsubscribed",
                    self_service=True,
                    when=act.last_event,
                )
    return added
