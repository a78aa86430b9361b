"""The values the Mailchimp emulator deals in: members, merge fields, tags, campaigns, batches.

Kept apart from ``emulator_state.py`` because these are about *data*, not behaviour: the vendor's value
rules (subscriber hashes, what a merge tag and a merge value of each type must look like, the statuses
the spec publishes) and the records an audience holds. Seeded generation of a realistic audience lives
in ``emulator_seeding.py``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

# What a member's status may be in a request; ``archived`` only ever appears in answers.
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
# Statuses an API call may never turn into "subscribed" (or "pending", for cleaned): the vendor's
# "Member In Compliance State".
COMPLIANCE = {"unsubscribed": frozenset({"subscribed"}), "cleaned": frozenset({"subscribed", "pending"})}
MERGE_TYPES = (
    "text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip",
)  # fmt: skip
# Every new audience has these (they count against the merge-field limit).
DEFAULT_MERGE_FIELDS = (
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
    ("BIRTHDAY", "Birthday", "birthday"),
)
BATCH_STAGES = ("pending", "preprocessing", "started", "finalizing", "finished")
ADMIN_REASON = "N/A (Unsubscribed by an admin)"
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,}$")
_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email.strip()))


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """Query times are ISO 8601; a naive one is UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class MergeField:
    merge_id: int
    tag: str
    name: str
    type: str
    choices: tuple[str, ...] = ()
    required: bool = False
    public: bool = False
    default_value: str = ""

    def coerce(self, raw: Any) -> Any:
        """The stored value of ``raw`` for this field ("" clears); ValueError says what is wrong."""
        if raw is None or raw == "":
            return ""
        if self.type == "address":
            if not isinstance(raw, dict) or not all(raw.get(k) for k in ("addr1", "city", "state", "zip")):
                raise ValueError("Please enter a complete address")
            return {k: str(raw.get(k, "")) for k in ("addr1", "addr2", "city", "state", "zip", "country")}
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError("Please enter a value")
        text = str(raw).strip()
        if self.type == "number":
            try:
                number = float(text)
            except ValueError:
                raise ValueError("Please enter a number") from None
            return int(number) if number.is_integer() else number
        if self.type == "date":
            try:
                return date.fromisoformat(text[:10]).isoformat()
            except ValueError:
                raise ValueError("Please enter the date in the format YYYY-MM-DD") from None
        if self.type in ("radio", "dropdown") and text not in self.choices:
            raise ValueError(f"Please choose one of: {', '.join(self.choices)}")
        return text


@dataclass
class Member:
    email: str
    status: str
    signed_up: datetime
    last_changed: datetime
    unique_email_id: str
    contact_id: str
    web_id: int
    merge: dict[str, Any] = field(default_factory=dict)  # merge tag -> stored value
    unsubscribe_reason: str = ""
    status_before_archive: str | None = None
    source: str = "API - Generic"

    @property
    def id(self) -> str:
        return subscriber_hash(self.email)


@dataclass
class Segment:
    """A tag, or a static segment (Mailchimp keeps tags as static segments)."""

    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    members: dict[str, None] = field(default_factory=dict)  # ordered set of subscriber hashes


@dataclass
class Audience:
    id: str
    name: str
    web_id: int
    created: datetime
    members: dict[str, Member] = field(default_factory=dict)  # subscriber hash -> member
    merge_fields: dict[str, MergeField] = field(default_factory=dict)  # tag -> field
    segments: dict[int, Segment] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)  # hashes of permanently deleted addresses
    last_sub: datetime | None = None
    last_unsub: datetime | None = None

    def segment_named(self, name: str) -> Segment | None:
        folded = name.strip().casefold()
        return next((s for s in self.segments.values() if s.name.casefold() == folded), None)

    def tags_of(self, member_id: str) -> list[Segment]:
        return [s for s in self.segments.values() if member_id in s.members]


@dataclass
class Recipient:
    """What one recipient did with one campaign."""

    member_id: str
    email: str
    opens: list[datetime] = field(default_factory=list)
    clicks: list[tuple[str, datetime]] = field(default_factory=list)
    bounce: tuple[str, datetime] | None = None  # ("hard" | "soft", when)
    unsubscribed: tuple[str, datetime] | None = None  # (reason, when)
    complained: bool = False


@dataclass
class Campaign:
    id: str
    web_id: int
    list_id: str
    segment_id: int | None
    title: str
    subject: str
    created: datetime
    send_time: datetime
    recipients: dict[str, Recipient] = field(default_factory=dict)  # subscriber hash -> recipient


@dataclass
class Batch:
    id: str
    operations: list[dict[str, Any]]
    submitted_at: datetime
    polls_needed: int
    stalled: bool
    forced_status: int | None
    polls: int = 0
    status: str = "pending"
    completed_at: datetime | None = None
    finished_operations: int = 0
    errored_operations: int = 0
    archive: bytes | None = None  # the .tar.gz of per-operation results, once finished
    signature: str = ""
