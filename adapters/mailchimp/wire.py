"""The Mailchimp Marketing API 3.0's bodies as typed msgspec Structs: what ``client.py`` decodes answers into.

They exist so the client hands the adapter typed values instead of dicts, and so a change in the vendor's
JSON fails loudly in one decode (with a path such as ``$.members[3].status``) rather than as a ``KeyError``
deep in the adapter. Names follow the published OpenAPI document (``shared/vendor-specs/mailchimp/
openapi0.json``), which is snake_case like the Structs. Unknown fields are ignored on purpose (vendors add
fields, and the answers carry dozens listsync does not read); fields the vendor may leave out have
defaults. A batch's results archive (a ``.tar.gz`` of JSON files) is a wire body too, so reading it
lives here.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import datetime
from typing import Any

import msgspec

# A merge field's value as 3.0 sends it: text (also dates, "" when empty), a number, or an address.
MergeValue = str | int | float | dict[str, str] | None


def subscriber_hash(email: str) -> str:
    """A member's id in the path: the MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    health_status: str = ""


class AudienceStats(msgspec.Struct, frozen=True, kw_only=True):
    member_count: int = 0
    unsubscribe_count: int = 0
    cleaned_count: int = 0
    merge_field_count: int = 0
    last_sub_date: str = ""
    last_unsub_date: str = ""


class Audience(msgspec.Struct, frozen=True, kw_only=True):
    """A list; Mailchimp's app calls it an audience."""

    id: str
    name: str
    stats: AudienceStats = AudienceStats()


class Audiences(msgspec.Struct, frozen=True, kw_only=True):
    lists: list[Audience]
    total_items: int = 0


class Tag(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """A list member; ``id`` is its subscriber hash."""

    id: str
    email_address: str
    status: str
    merge_fields: dict[str, MergeValue] = {}
    tags: list[Tag] = []
    last_changed: datetime | None = None
    unsubscribe_reason: str = ""


class Members(msgspec.Struct, frozen=True, kw_only=True):
    members: list[Member]
    total_items: int = 0


class BatchSubscribeError(msgspec.Struct, frozen=True, kw_only=True):
    email_address: str = ""
    error: str = ""
    error_code: str = ""


class BatchSubscribeResult(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /lists/{id}``: who was created, who updated, and why the others were not."""

    new_members: list[Member] = []
    updated_members: list[Member] = []
    errors: list[BatchSubscribeError] = []


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """A tag or static segment; ``member_count`` as the query's ``include_*`` flags count it."""

    id: int
    name: str
    member_count: int = 0
    type: str = "static"


class Segments(msgspec.Struct, frozen=True, kw_only=True):
    segments: list[Segment]
    total_items: int = 0


class SegmentError(msgspec.Struct, frozen=True, kw_only=True):
    email_addresses: list[str] = []
    error: str = ""


class SegmentMembersResult(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /lists/{id}/segments/{id}``; addresses not in the audience are neither added nor errors."""

    members_added: list[Member] = []
    members_removed: list[Member] = []
    errors: list[SegmentError] = []


class MergeFieldOptions(msgspec.Struct, frozen=True, kw_only=True):
    choices: list[str] = []


class MergeField(msgspec.Struct, frozen=True, kw_only=True):
    merge_id: int
    tag: str
    name: str = ""
    type: str = "text"
    options: MergeFieldOptions = MergeFieldOptions()


class MergeFields(msgspec.Struct, frozen=True, kw_only=True):
    merge_fields: list[MergeField]
    total_items: int = 0
    merge_field_limit: int | None = None


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    """A batch operation: pending, preprocessing, started, finalizing, then finished."""

    id: str
    status: str
    total_operations: int = 0
    finished_operations: int = 0
    errored_operations: int = 0
    response_body_url: str = ""


class OperationResult(msgspec.Struct, frozen=True, kw_only=True):
    """One operation's answer in a batch's results archive; ``response`` is the answer's JSON text."""

    status_code: int
    operation_id: str | None = None
    response: str = ""


class SegmentOptions(msgspec.Struct, frozen=True, kw_only=True):
    saved_segment_id: int | str | None = None
    conditions: list[dict[str, Any]] = []


class Recipients(msgspec.Struct, frozen=True, kw_only=True):
    list_id: str = ""
    segment_opts: SegmentOptions = SegmentOptions()


class CampaignSettings(msgspec.Struct, frozen=True, kw_only=True):
    title: str = ""
    subject_line: str = ""


class Campaign(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: str = ""
    send_time: datetime | None = None
    emails_sent: int = 0
    recipients: Recipients = Recipients()
    settings: CampaignSettings = CampaignSettings()


class Campaigns(msgspec.Struct, frozen=True, kw_only=True):
    campaigns: list[Campaign]
    total_items: int = 0


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """One open, click or bounce (``type`` hard or soft)."""

    action: str
    timestamp: datetime
    type: str = ""
    url: str = ""


class EmailActivity(msgspec.Struct, frozen=True, kw_only=True):
    email_id: str
    email_address: str
    activity: list[Action] = []


class EmailActivities(msgspec.Struct, frozen=True, kw_only=True):
    emails: list[EmailActivity]
    total_items: int = 0


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True):
    email_id: str
    email_address: str
    timestamp: datetime
    reason: str = ""


class Unsubscribes(msgspec.Struct, frozen=True, kw_only=True):
    unsubscribes: list[Unsubscribe]
    total_items: int = 0


class Opens(msgspec.Struct, frozen=True, kw_only=True):
    opens_total: int = 0


class Clicks(msgspec.Struct, frozen=True, kw_only=True):
    clicks_total: int = 0


class Bounces(msgspec.Struct, frozen=True, kw_only=True):
    hard_bounces: int = 0
    soft_bounces: int = 0
    syntax_errors: int = 0


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """A sent campaign's totals (the counters listsync keeps; the rates are left to the vendor's app)."""

    emails_sent: int = 0
    unsubscribed: int = 0
    opens: Opens = Opens()
    clicks: Clicks = Clicks()
    bounces: Bounces = Bounces()


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An RFC 9457 problem document; ``errors`` lists field problems on validation failures."""

    title: str = ""
    status: int = 0
    detail: str = ""
    instance: str = ""
    errors: list[dict[str, Any]] = []


_RESULTS = msgspec.json.Decoder(list[OperationResult])


def read_batch_results(archive: bytes) -> list[OperationResult]:
    """Every operation result in a batch's ``.tar.gz``; raises tarfile.TarError, OSError (a cut gzip
    stream) or msgspec errors when the archive is not whole."""
    results: list[OperationResult] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for item in tar.getmembers():
            handle = tar.extractfile(item) if item.isfile() and item.name.endswith(".json") else None
            if handle is not None:
                results.extend(_RESULTS.decode(handle.read()))
    return results
