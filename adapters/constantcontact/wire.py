"""The Constant Contact v3 API's bodies as typed msgspec Structs, and the JSON import body.

They exist so the client hands the adapter typed values instead of dicts, and so a change in the vendor's
JSON fails loudly in one decode (with a path such as ``$.contacts[3].email_address``) rather than as a
``KeyError`` deep in the adapter. Names follow the Swagger document
(``shared/vendor-specs/constant-contact/constant-contact-v3-swagger.yaml``), whose fields are already
snake_case. Unknown fields are ignored on purpose: vendors add fields, and an extra one must never break a
sync. The JSON import's body is a wire body too, so building it and cutting it to the vendor's 4 MB
(beyond which Constant Contact silently drops the rest) lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

# The vendor reads the first 4 MB of an import body and silently drops the rest; a little is kept
# back so that a body measured here can never be cut there.
MAX_IMPORT_BYTES = 4 * 1024 * 1024 - 4096
MAX_IMPORT_ROWS = 40_000  # the documented most contacts one import takes
EMAIL_KEY = "email"
CUSTOM_PREFIX = "cf:"


class Link(msgspec.Struct, frozen=True):
    href: str


class Links(msgspec.Struct, frozen=True):
    next: Link | None = None


class EmailAddress(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    permission_to_send: str = "not_set"
    opt_in_source: str | None = None
    opt_out_source: str | None = None
    opt_out_date: datetime | None = None
    opt_out_reason: str | None = None


class ContactCustomField(msgspec.Struct, frozen=True, kw_only=True):
    custom_field_id: str
    value: str | None = None


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """``ContactResource``, read with ``include=custom_fields,list_memberships``."""

    contact_id: str
    email_address: EmailAddress | None = None
    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    company_name: str | None = None
    updated_at: datetime | None = None
    deleted_at: str | None = None
    custom_fields: list[ContactCustomField] = []
    list_memberships: list[str] = []


class ContactsPage(msgspec.Struct, frozen=True, kw_only=True):
    contacts: list[Contact] = []
    contacts_count: int | None = None
    links: Links | None = msgspec.field(default=None, name="_links")


class ContactList(msgspec.Struct, frozen=True, kw_only=True):
    list_id: str
    name: str
    membership_count: int | None = None
    updated_at: datetime | None = None


class ListsPage(msgspec.Struct, frozen=True, kw_only=True):
    lists: list[ContactList] = []
    links: Links | None = msgspec.field(default=None, name="_links")


class CustomField(msgspec.Struct, frozen=True, kw_only=True):
    custom_field_id: str
    label: str
    name: str
    type: str = "string"


class CustomFieldsPage(msgspec.Struct, frozen=True, kw_only=True):
    custom_fields: list[CustomField] = []
    links: Links | None = msgspec.field(default=None, name="_links")


class ActivityStatus(msgspec.Struct, frozen=True, kw_only=True):
    items_total_count: int = 0
    items_completed_count: int = 0
    person_count: int = 0
    error_count: int = 0
    cannot_add_to_list_count: int = 0


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """A bulk activity: ``initialized``, ``processing``, then completed, cancelled, failed or timed_out."""

    activity_id: str
    state: str
    percent_done: int = 0
    activity_errors: list[str] = []
    status: ActivityStatus = ActivityStatus()


class ActivityReference(msgspec.Struct, frozen=True, kw_only=True):
    campaign_activity_id: str
    role: str = ""


class EmailCampaign(msgspec.Struct, frozen=True, kw_only=True):
    """An item of ``GET /emails``, or ``GET /emails/{id}`` with its ``campaign_activities``."""

    campaign_id: str
    name: str = ""
    current_status: str = ""
    updated_at: datetime | None = None
    campaign_activities: list[ActivityReference] = []


class EmailCampaignsPage(msgspec.Struct, frozen=True, kw_only=True):
    campaigns: list[EmailCampaign] = []
    links: Links | None = msgspec.field(default=None, name="_links")


class CampaignActivity(msgspec.Struct, frozen=True, kw_only=True):
    campaign_activity_id: str
    campaign_id: str = ""
    contact_list_ids: list[str] = []


class Tracking(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a ``/reports/email_reports/{id}/tracking/...`` feed (sends, opens, clicks, bounces,
    opt-outs share this shape; the kind-specific fields are optional)."""

    contact_id: str
    campaign_activity_id: str
    tracking_activity_type: str
    email_address: str
    created_time: datetime
    link_url: str | None = None
    url_id: str | None = None
    bounce_code: str | None = None


class TrackingPage(msgspec.Struct, frozen=True, kw_only=True):
    tracking_activities: list[Tracking] = []
    links: Links | None = msgspec.field(default=None, name="_links")


class EmailStats(msgspec.Struct, frozen=True, kw_only=True):
    em_sends: int = 0
    em_opens_all: int = 0
    em_clicks_all: int = 0
    em_bounces: int = 0
    em_optouts: int = 0


class CampaignStats(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: str
    stats: EmailStats = EmailStats()


class CampaignStatsResult(msgspec.Struct, frozen=True, kw_only=True):
    results: list[CampaignStats] = []


class TokenGrant(msgspec.Struct, frozen=True, kw_only=True):
    """The token endpoint's answer. Never logged: it holds the tokens."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None
    token_type: str = "Bearer"

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in={self.expires_in})"


_ENCODER = msgspec.json.Encoder()
_ENVELOPE = len(b'{"import_data":[],"list_ids":[]}')


def import_body(rows: Sequence[Mapping[str, str]], list_ids: Sequence[str]) -> bytes:
    """The ``contacts_json_import`` body: the rows (``email``, contact properties, ``cf:<name>``)
    and the lists every imported contact joins."""
    return _ENCODER.encode({"import_data": list(rows), "list_ids": list(list_ids)})


def split_for_import(
    rows: Sequence[Mapping[str, str]],
    list_ids: Sequence[str],
    *,
    max_bytes: int = MAX_IMPORT_BYTES,
    max_rows: int = MAX_IMPORT_ROWS,
) -> list[list[Mapping[str, str]]]:
    """Cut ``rows`` into runs whose import body stays within ``max_bytes`` and ``max_rows`` (a row too
    big alone is still a run of its own, which the client then refuses)."""
    head = _ENVELOPE + len(_ENCODER.encode(list(list_ids))) - 2
    runs: list[list[Mapping[str, str]]] = []
    size = head
    for row in rows:
        length = len(_ENCODER.encode(row)) + 1  # the comma that joins it to the one before
        if not runs or size + length > max_bytes or len(runs[-1]) >= max_rows:
            runs.append([])
            size = head
        runs[-1].append(row)
        size += length
    return runs
