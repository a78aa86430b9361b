"""The in-memory Mailchimp account behind the emulator.

The HTTP layer (``emulator.py``, ``emulator_routes.py``, ``emulator_wire.py``) only parses requests,
renders JSON and maps errors; everything the account *does* lives here, in one ``MailchimpState`` that
tests can inspect and steer: audiences with members keyed by subscriber hash (creating and changing
them under the vendor's status rules is ``emulator_members.py``'s job), merge fields with the audience's
limit, tags (static segments), archiving and permanent deletion, sent campaigns with per-recipient
activity, and batch operations that move through their stages as they are polled (running them is
``emulator_batches.py``'s job). Time comes only from
the injected monotonic ``clock``; dates are derived from it. Randomness comes only from ``state.rng``.

Where the published material is silent the emulator makes a documented choice: the default member
listing leaves archived members out (ask for ``status=archived``); adding or removing a tag does not
move a member's ``last_changed``; a merge tag the audience lacks is refused rather than dropped; an
unsubscribe asked of a cleaned member leaves it cleaned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from adapters.emulation.accounts import EmulatedAccount
from adapters.mailchimp.emulator_data import (
    BATCH_STAGES,
    DEFAULT_MERGE_FIELDS,
    MERGE_TYPES,
    Audience,
    Batch,
    Campaign,
    Member,
    MergeField,
    Segment,
    subscriber_hash,
    valid_email,
    valid_tag,
)
from adapters.mailchimp.emulator_seeding import ActivityShares, simulate_activity

# Batch subscribe, and each of a static segment's add/remove arrays.
MAX_BATCH_MEMBERS = 500
UNVALIDATED = (
    "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
)


class ApiError(Exception):
    """A refusal the app renders as an RFC 9457 problem document."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(f"{title}: {detail}")
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, errors)


def not_found() -> ApiError:
    return ApiError(404, "Resource Not Found", "The requested resource could not be found.")


@dataclass(frozen=True)
class Knobs:
    """Account settings and the account's own faults (batches, operations). Swap at runtime with
    ``state.tune(...)``. Faults any HTTP API has (errors, drops, timeouts, cut JSON, latency) are the
    shared fault layer's (``adapters.emulation``)."""

    api_key: str = "0123456789abcdef0123456789abcdef-us21"
    max_connections: int = 10  # the 11th simultaneous request gets 429
    # Seconds each call holds its connection while it runs, so that a test can crowd the cap above
    # (the fault layer's latency passes before a call takes its connection).
    hold: float = 0.0
    merge_field_limit: int = 30  # per audience, the five default fields included (80 on Premium)
    max_pending_batches: int = 500
    batch_polls: int = 4  # polls of a batch before it is finished (it moves a stage per poll)
    batch_stalls: bool = False  # new batches never finish
    batch_forced_status: int | None = None  # every operation of new batches answers this status
    operation_fault_share: float = 0.0  # share of batch operations answering 500
    batch_fail_share: float = 0.0  # share of new batches whose every operation answers 500
    batch_stall_share: float = 0.0  # share of new batches that stay started for ever

    @property
    def data_centre(self) -> str:
        return self.api_key.rpartition("-")[2]


class MailchimpState(EmulatedAccount[Knobs]):
    """One Mailchimp account, in memory. All behaviour of the emulator; no HTTP here."""

    job_fault_knobs: ClassVar[Mapping[str, str]] = {
        "job_fail": "batch_fail_share",
        "job_stall": "batch_stall_share",
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
        self.audiences: dict[str, Audience] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.batches: dict[str, Batch] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self._web_ids = 1000

    # -- ids ----------------------------------------------------------------------------------------
    def hex_id(self, size: int = 10) -> str:
        return f"{self.rng.getrandbits(size * 4):0{size}x}"

    def web_id(self) -> int:
        self._web_ids += self.rng.randint(1, 97)
        return self._web_ids

    # -- audiences ----------------------------------------------------------------------------------
    def create_audience(self, name: str) -> Audience:
        audience = Audience(self.hex_id(), name, self.web_id(), self.now())
        for tag, label, type_ in DEFAULT_MERGE_FIELDS:
            self._add_merge_field(audience, MergeField(len(audience.merge_fields) + 1, tag, label, type_))
        self.audiences[audience.id] = audience
        return audience

    def audience(self, list_id: str) -> Audience:
        if list_id not in self.audiences:
            raise not_found()
        return self.audiences[list_id]

    # -- members ------------------------------------------------------------------------------------
    def member(self, audience: Audience, key: str, *, archived: bool = True) -> Member:
        """A member by subscriber hash or email (the path accepts either)."""
        found = audience.members.get(subscriber_hash(key) if "@" in key else key.lower())
        if found is None or (found.status == "archived" and not archived):
            raise not_found()
        return found

    def add_member(
        self, audience: Audience, email: str, status: str, *, when: datetime | None = None
    ) -> Member:
        """Store a new member as is (no checks): for seeding and for the checked paths below."""
        moment = when or self.now()
        member = Member(email.strip(), status, moment, moment, self.hex_id(), self.hex_id(32), self.web_id())
        member.merge = {tag: "" for tag in audience.merge_fields}
        audience.members[member.id] = member
        return member

    def unsubscribe(self, audience: Audience, member: Member, reason: str, when: datetime) -> None:
        """A recipient's own unsubscribe (from a campaign's link)."""
        member.status, member.unsubscribe_reason, member.last_changed = "unsubscribed", reason, when
        audience.last_unsub = when

    def archive(self, audience: Audience, key: str) -> None:
        member = self.member(audience, key, archived=False)
        member.status_before_archive, member.status = member.status, "archived"
        member.last_changed = self.now()

    def delete_permanently(self, audience: Audience, key: str) -> None:
        member = self.member(audience, key)
        del audience.members[member.id]
        audience.forgotten.add(member.id)
        for segment in audience.segments.values():
            segment.members.pop(member.id, None)

    # -- tags and static segments -------------------------------------------------------------------
    def create_segment(self, audience: Audience, name: str, emails: Iterable[str] = ()) -> Segment:
        name = name.strip()
        if not name or len(name) > 100:
            raise invalid("A tag name must be 1 to 100 characters.")
        if audience.segment_named(name) is not None:
            raise invalid(f'A tag or segment named "{name}" already exists in this audience.')
        moment = self.now()
        segment = Segment(max(audience.segments, default=100) + self.rng.randint(1, 9), name, moment, moment)
        audience.segments[segment.id] = segment
        for email in emails:  # addresses not in the audience are ignored, as the spec says
            if subscriber_hash(email) in audience.members:
                segment.members[subscriber_hash(email)] = None
        return segment

    def segment(self, audience: Audience, segment_id: str) -> Segment:
        found = audience.segments.get(int(segment_id)) if segment_id.isdigit() else None
        if found is None:
            raise not_found()
        return found

    def set_tags(self, audience: Audience, member: Member, tags: Iterable[tuple[str, bool]]) -> None:
        """Activate or deactivate tags by name; an active tag that does not exist is created."""
        for name, active in tags:
            segment = audience.segment_named(name)
            if segment is None and active:
                segment = self.create_segment(audience, name)
            if segment is None:
                continue
            if active:
                segment.members[member.id] = None
            else:
                segment.members.pop(member.id, None)
            segment.updated_at = self.now()

    def segment_members(
        self, audience: Audience, segment: Segment, add: list[str], remove: list[str]
    ) -> tuple[list[Member], list[Member], list[dict[str, Any]]]:
        """``POST /lists/{id}/segments/{id}``: (added, removed, errors); unknown addresses are ignored."""
        if len(add) > MAX_BATCH_MEMBERS or len(remove) > MAX_BATCH_MEMBERS:
            raise invalid(f"members_to_add and members_to_remove take at most {MAX_BATCH_MEMBERS} addresses.")
        bad = [e for e in (*add, *remove) if not valid_email(e)]
        added, removed = [], []
        for email in add:
            member = audience.members.get(subscriber_hash(email))
            if member is not None and valid_email(email):
                segment.members[member.id] = None
                added.append(member)
        for email in remove:
            member = audience.members.get(subscriber_hash(email))
            if member is not None and segment.members.pop(member.id, 0) is None:
                removed.append(member)
        segment.updated_at = self.now()
        return added, removed, [{"email_addresses": bad, "error": "Invalid email address"}] if bad else []

    # -- merge fields -------------------------------------------------------------------------------
    def create_merge_field(self, audience: Audience, body: Mapping[str, Any]) -> MergeField:
        name, type_ = str(body.get("name") or "").strip(), str(body.get("type") or "")
        if not name or type_ not in MERGE_TYPES:
            raise invalid("A merge field needs a name and a type of " + ", ".join(MERGE_TYPES) + ".")
        merge_id = max((f.merge_id for f in audience.merge_fields.values()), default=0) + 1
        tag = str(body.get("tag") or f"MMERGE{merge_id}").strip().upper()
        if not valid_tag(tag):
            raise invalid(f'The merge tag "{tag}" must be 1 to 10 letters, digits or underscores.')
        if tag in audience.merge_fields:
            raise invalid(f'A Merge Field with the tag "{tag}" already exists for this list.')
        if len(audience.merge_fields) >= self.knobs.merge_field_limit:
            limit = self.knobs.merge_field_limit
            raise invalid(f"This audience already has the most merge fields it may have ({limit}).")
        options = body.get("options") or {}
        choices = tuple(str(c) for c in options.get("choices") or ()) if isinstance(options, dict) else ()
        if type_ in ("radio", "dropdown") and not choices:
            raise invalid(f"A {type_} merge field needs options.choices.")
        field = MergeField(
            merge_id, tag, name, type_, choices, bool(body.get("required")), bool(body.get("public"))
        )
        return self._add_merge_field(audience, field)

    def _add_merge_field(self, audience: Audience, field: MergeField) -> MergeField:
        audience.merge_fields[field.tag] = field
        for member in audience.members.values():
            member.merge.setdefault(field.tag, "")
        return field

    # -- campaigns ----------------------------------------------------------------------------------
    def add_campaign(
        self, list_id: str, title: str, *, segment_id: int | None = None, sent_at: datetime | None = None
    ) -> Campaign:
        audience = self.audience(list_id)
        if segment_id is not None and segment_id not in audience.segments:
            raise not_found()
        sent = sent_at or self.now()
        campaign = Campaign(
            self.hex_id(), self.web_id(), list_id, segment_id, title, f"News: {title}", sent, sent
        )
        self.campaigns[campaign.id] = campaign
        return campaign

    def generate_activity(self, campaign_id: str, shares: ActivityShares | None = None) -> int:
        """Send the campaign (seeded by ``state.rng``): opens, clicks, bounces and unsubscribes; a hard
        bounce cleans the member. Returns the recipients added."""
        return simulate_activity(self, self.campaign(campaign_id), self.rng, shares or ActivityShares())

    def campaign(self, campaign_id: str) -> Campaign:
        if campaign_id not in self.campaigns:
            raise not_found()
        return self.campaigns[campaign_id]

    # -- batch operations ---------------------------------------------------------------------------
    def submit_batch(self, operations: Any) -> Batch:
        if not isinstance(operations, list) or not all(
            isinstance(op, dict) and op.get("method") and op.get("path") for op in operations
        ):
            raise invalid("Each operation needs a method and a path.")
        pending = sum(1 for b in self.batches.values() if b.status != "finished")
        if pending >= self.knobs.max_pending_batches:
            raise ApiError(429, "Too Many Requests", (
                f"You have more than {self.knobs.max_pending_batches} pending batches."
            ))  # fmt: skip
        k, fault = self.knobs, self.draw_job_fault()
        batch = Batch(
            self.hex_id(),
            operations,
            self.now(),
            max(1, k.batch_polls),
            k.batch_stalls or fault == "job_stall",
            500 if fault == "job_fail" else k.batch_forced_status,
        )
        batch.signature = self.hex_id(24)
        self.batches[batch.id] = batch
        return batch

    def poll_batch(self, batch_id: str) -> Batch:
        """Each poll moves the batch a stage on; it is finished after ``polls_needed`` polls."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise not_found()
        batch.polls += 1
        if batch.status != "finished":
            stage = min(len(BATCH_STAGES) - 1, batch.polls * (len(BATCH_STAGES) - 1) // batch.polls_needed)
            if batch.stalled:
                stage = min(stage, BATCH_STAGES.index("started"))
            batch.status = BATCH_STAGES[stage]
        return batch
