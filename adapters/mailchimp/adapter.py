"""The Mailchimp adapter: the ESP side of a sync, on the typed 3.0 client (``client.py``).

Why it looks the way it does:

- One audience per rule set (setting ``audience``: its id or its name), and each engine list is a tag in
  it (Mailchimp keeps tags as static segments; ``membership`` picks how they are written, see
  ``memberships.py``). Merge fields are the custom fields; an audience holds at most ``merge_field_limit``
  of them, its five default fields included, which ``Capabilities.field_limits["total"]`` says so the
  engine refuses a plan that would pass it. Merge tags are at most 10 upper-case letters, digits or ``_``.
- Reads: a full snapshot reads every member (1,000 a page, ten pages at a time) with its merge fields
  and tags; an incremental one reads members changed since the cursor (less a five-minute overlap).
  Pages overlap so that a member archived or moved during a read hides no other (``client.py``); a
  member edited during the read may come twice (the later read is kept), and with its values from
  before the edit, which the next read (from the cursor, the moment this one began) gives again.
  Tag changes do not move a member's ``last_changed``, so only full reads see tags changed in Mailchimp's
  app. Archived members are not in a snapshot (Mailchimp's app treats them as gone); an incremental
  read reports those archived since the cursor as ``deleted``. Under ``archived = "skip"`` every
  snapshot names them all in ``left_alone``, so a plan leaves them be (and says so) instead of
  planning an upsert that would be refused on every run; ``"restore"`` lets the engine write them.
- Writes: upserts and opt-outs go through batch subscribe and are answered at once (``members.py``,
  which also says how statuses may change); memberships are a batch of tag calls followed by ``poll``,
  or static-segment calls answered at once. The adapter keeps no job state: ``poll`` gets the job's ops
  from the engine.
- Capabilities: Mailchimp documents no call rate, only 10 simultaneous connections per user, which the
  client's semaphore enforces (``max_connections``), so ``calls`` is unset; a rule set may still set
  ``limits.calls``. An engine batch is 5,000 ops, cut into calls of 500.
- ``version`` hashes the audience's counters, its tags with their member counts (every status), its
  merge fields, and the members changed since the start of the current UTC day. Like Dotdigital's, it
  misses a tag change that leaves every count the same, and moves at midnight UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
import msgspec
import xxhash

from adapters.common import parse_cursor, settings_of
from adapters.mailchimp import members, memberships, rows
from adapters.mailchimp.activity import read_activity
from adapters.mailchimp.client import MailchimpClient, data_centre
from adapters.mailchimp.errors import MailchimpError
from engine.activity_feed import ActivityFeed
from engine.contract import AdapterContext, Capabilities, JobStatus, Outcome, Snapshot
from engine.errors import PermanentError
from engine.plans import Op, OpKind
from engine.ruleset import SecretRef, Side

WRITES = frozenset(
    {"create_list", "create_field", "opt_out_esp", "remove_member", "upsert_contact", "add_member"}
)
ENGINE_BATCH = 5_000
CURSOR_OVERLAP = timedelta(minutes=5)
TAG_NAME_MAX = 100
FIELD_NAME_PATTERN = r"^[A-Z0-9_]{1,10}$"
_ENCODER = msgspec.json.Encoder(order="deterministic")


class MailchimpSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[esp.settings]`` for ``adapter = "mailchimp"``."""

    api_key: SecretRef
    audience: str  # the audience's id, or its name
    membership: Literal["tag", "segment"] = "tag"
    new_member_status: Literal["subscribed", "pending", "transactional"] = "subscribed"
    archived: Literal["skip", "restore"] = "skip"
    resubscribe: Literal["never", "pending"] = "never"
    merge_field_limit: int = 30  # 80 on Premium
    activity_window_days: int = 30  # how long after its send a campaign's activity is read
    endpoint: str | None = None  # default https://<the key's data centre>.api.mailchimp.com
    max_connections: int = 10


class MailchimpAdapter:
    """One Mailchimp audience as the ESP side of a sync."""

    name: ClassVar[str] = "mailchimp"
    settings_type: ClassVar[type[msgspec.Struct]] = MailchimpSettings

    def __init__(self, settings: MailchimpSettings | Any, context: AdapterContext) -> None:
        self._settings = settings_of(settings, MailchimpSettings)
        self._context = context
        self._http: httpx.AsyncClient | None = None
        self._client: MailchimpClient | None = None
        self._opening = asyncio.Lock()
        self._list_id: str | None = None
        self._tags: dict[str, int] = {}  # tag name -> segment id
        self._archived: set[str] | None = None  # lower-cased emails of archived members

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        return Capabilities(
            max_batch=ENGINE_BATCH,
            max_list_name=TAG_NAME_MAX,
            field_name_max=10,
            field_name_pattern=FIELD_NAME_PATTERN,
            field_limits={"total": settings_of(settings, MailchimpSettings).merge_field_limit},
            writes=WRITES,
            activity=True,
        )

    async def _api(self) -> tuple[MailchimpClient, str]:
        """The client, opened on first use on the key's data centre, and the audience's id."""
        async with self._opening:
            if self._client is None:
                factory = self._context.http
                if factory is None:
                    raise PermanentError(
                        "the Mailchimp adapter needs an HTTP client factory (AdapterContext.http)"
                    )
                key = self._context.secret(self._settings.api_key)
                endpoint = self._settings.endpoint or f"https://{data_centre(key)}.api.mailchimp.com"
                self._http = factory(endpoint.rstrip("/"))
                self._client = MailchimpClient(
                    self._http,
                    api_key=key,
                    max_connections=self._settings.max_connections,
                    retry_reads=True,
                )
            if self._list_id is None:
                self._list_id = await self._find_audience(self._client)
            return self._client, self._list_id

    async def _find_audience(self, api: MailchimpClient) -> str:
        wanted = self._settings.audience.strip()
        audiences = await api.audiences()
        for audience in audiences:
            if audience.id == wanted or audience.name.casefold() == wanted.casefold():
                return audience.id
        names = ", ".join(repr(a.name) for a in audiences) or "none"
        raise PermanentError(
            f"no Mailchimp audience has the id or name {wanted!r} "
            f"(GET /3.0/lists lists the account's: {names})"
        )

    # -- reading ------------------------------------------------------------------------------------
    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        api, list_id = await self._api()
        started = datetime.now(UTC)
        since = parse_cursor(cursor)
        window = None if since is None else since - CURSOR_OVERLAP
        version = await self.version()
        self._tags = {tag.name: tag.id for tag in await api.segments(list_id)}
        merge_fields, _ = await api.merge_fields(list_id)
        read: dict[str, bytes] = {}  # by id: one edited during the read may come twice, newest last
        archived: set[str] = set()
        for member in await api.members(list_id, since=window):
            if member.status == "archived":  # should Mailchimp list them by default after all
                archived.add(member.email_address.lower())
            else:
                read[member.id] = rows.encode_member(member)
        archived.update(
            m.email_address.lower() for m in await api.members(list_id, status="archived", since=window)
        )
        if since is None:
            self._archived = archived
        elif self._archived is not None:
            self._archived |= archived
        left_alone: dict[str, str] = {}
        if self._settings.archived == "skip":
            left_alone = dict.fromkeys(sorted(await self._archived_emails(api, list_id)), members.ARCHIVED)
        return Snapshot(
            complete=since is None,
            version=version,
            payloads=list(read.values()),
            decode=rows.decode,
            deleted=() if since is None else sorted(archived),
            left_alone=left_alone,
            lists={name: str(tag_id) for name, tag_id in self._tags.items()},
            fields={f.tag: rows.engine_type(f) for f in merge_fields},
            cursor=started.isoformat(),
        )

    async def version(self) -> str:
        """Hash of the audience's counters, tags (with counts), merge fields and today's changed members."""
        api, list_id = await self._api()
        anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        stats = (await api.audience(list_id)).stats
        tags = sorted((t.id, t.name, t.member_count) for t in await api.segments(list_id))
        fields = sorted((f.tag, f.type) for f in (await api.merge_fields(list_id))[0])
        changed = sorted(
            {m.id: rows.encode_member(m) for m in await api.members(list_id, since=anchor)}.values()
        )
        blob = _ENCODER.encode([stats, tags, fields, changed])
        return f"{anchor:%Y-%m-%d}:{xxhash.xxh3_64_hexdigest(blob)}"

    async def activity(self, cursor: str | None, since: datetime) -> ActivityFeed:
        """Campaign events since the cursor (less the overlap) or, without one, since ``since``."""
        api, list_id = await self._api()
        started = datetime.now(UTC)
        after = parse_cursor(cursor)
        names = {tag.id: tag.name for tag in await api.segments(list_id)}
        return await read_activity(
            api, list_id, since if after is None else after - CURSOR_OVERLAP, started,
            window=timedelta(days=self._settings.activity_window_days), tag_names=names,
        )  # fmt: skip

    # -- writing ------------------------------------------------------------------------------------
    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if kind not in WRITES:
            return [Outcome(False, f"Mailchimp does not {kind.replace('_', ' ')}: not an ESP op")] * len(ops)
        api, list_id = await self._api()
        settings = self._settings
        try:
            if kind == "create_list":
                return [await self._create_tag(api, list_id, op) for op in ops]
            if kind == "create_field":
                return [await self._create_field(api, list_id, op) for op in ops]
            if kind == "opt_out_esp":
                return await members.opt_out(api, list_id, ops)
            if kind == "upsert_contact":
                archived = await self._archived_emails(api, list_id) if settings.archived == "skip" else ()
                return await members.upsert(
                    api, list_id, ops, new_status=settings.new_member_status,
                    resubscribe=settings.resubscribe, archived=archived,
                )  # fmt: skip
            if settings.membership == "segment":
                return await memberships.through_segments(api, list_id, kind, ops, self._tag_id)
            return await memberships.tag_through_batch(api, list_id, kind, ops)
        except MailchimpError as refused:
            return [Outcome(False, str(refused))] * len(ops)

    async def _create_tag(self, api: MailchimpClient, list_id: str, op: Op) -> Outcome:
        name = (op.list or "").strip()
        if not name or len(name) > TAG_NAME_MAX:
            return Outcome(False, f"{name!r} cannot be a Mailchimp tag name (1 to {TAG_NAME_MAX} characters)")
        try:
            tag = await api.create_segment(list_id, name)
        except MailchimpError as refused:
            return (
                Outcome(True)
                if await self._tag_id(name, refresh=True) is not None
                else Outcome(False, str(refused))
            )
        self._tags[tag.name] = tag.id
        return Outcome(True)

    async def _create_field(self, api: MailchimpClient, list_id: str, op: Op) -> Outcome:
        wanted = rows.VENDOR_TYPES.get(op.field_type or "text")
        if not op.field or wanted is None:
            return Outcome(False, f"cannot create merge field {op.field!r} of type {op.field_type!r}")
        type_, choices = wanted
        try:
            await api.create_merge_field(list_id, op.field, type_, choices=choices)
        except MailchimpError as refused:
            existing = {f.tag: f for f in (await api.merge_fields(list_id))[0]}.get(op.field.upper())
            if existing is None:
                return Outcome(False, str(refused))
            if rows.engine_type(existing) != (op.field_type or "text"):
                return Outcome(
                    False, f"merge field {op.field} already exists as {existing.type}, not {type_}"
                )
        return Outcome(True)

    async def _tag_id(self, name: str, *, refresh: bool = False) -> int | None:
        """A tag's segment id by name (case-insensitive, as Mailchimp's tag names are unique that way)."""
        if refresh or name not in self._tags:
            api, list_id = await self._api()
            self._tags = {tag.name: tag.id for tag in await api.segments(list_id)}
        folded = name.casefold()
        return self._tags.get(name) or next(
            (i for n, i in self._tags.items() if n.casefold() == folded), None
        )

    async def _archived_emails(self, api: MailchimpClient, list_id: str) -> set[str]:
        if self._archived is None:
            self._archived = {m.email_address.lower() for m in await api.members(list_id, status="archived")}
        return self._archived

    # -- jobs ---------------------------------------------------------------------------------------
    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        """A tag batch's state; once finished, one outcome per op of ``ops`` (the job's, in written order)."""
        if not job.startswith(memberships.BATCH):
            return JobStatus(
                "unknown", True, tuple(Outcome(False, f"not a Mailchimp job: {job}") for _ in ops)
            )
        api, _ = await self._api()
        return await memberships.poll_batch(api, job, ops)

    async def flush(self) -> None:
        """Nothing to do: every write Mailchimp accepted is already durable on its side."""

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()
