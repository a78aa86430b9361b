"""The Dotdigital adapter: the ESP side of a sync, on the typed v2 client (``client.py``).

Why it looks the way it does:

- Reads are whole-account or "modified since": v2 has no cheap way to read one contact's books, so every
  snapshot reads all address books' members (ids only, 1,000 a call) to put each contact's lists in its
  row, and a row's bytes are the same whether a full or an incremental read produced it (``rows.py``).
- A contact unsubscribed from one address book alone (a list's own unsubscribe link; it stays
  subscribed account-wide) is opted out in its row, the reason naming the book, exactly as an
  account-wide unsubscribe is: listsync's model has one opt-out per contact, and this is the
  conservative reading for consent. It reaches the CRM's opt-out flag and stops any ``add_member``
  putting them back; in Dotdigital they stay in their other books. ``books.py`` has the why, the cost
  (one paged read per book per snapshot) and the limits.
- Contact writes are bulk CSV imports, which Dotdigital finishes later: ``upsert_contact`` and
  ``add_member`` answer ``Outcome(job=<import id>)`` and ``poll`` reads the import's report, and its fault
  report when the counts show rows with a problem, into one outcome per op (``jobs.py``). Removals are
  bulk deletion jobs (``deletion:<id>``). Lists, fields, resubscribes and opt-outs of known contacts (one
  bulk suppress per 1,000) are direct calls that answer at once.
- At most ``max_active_imports`` (25, Dotdigital's limit) of the account's imports are in flight, counted
  across every run of the account in this process (the service's processes run at once): before another
  is submitted, the oldest is polled until one ends (``jobs.ImportsInFlight``, kept in the context's
  ``account_state``). Imports of other programs, or left running by a process before a restart, still
  meet the vendor's refusal, a transient error; a write cut short by it (or by anything transient)
  after some imports were submitted answers those (``interrupted``), so a retry submits only the rest.
- A CRM opt-out of an address Dotdigital has never seen is still pushed, so that a later import from
  anywhere else (a form, a manual upload) cannot mail that person. v2 can only create an unsubscribed
  contact one call at a time, which made the first sync of a CRM with many opt-outs cost hours of the
  hourly budget; those addresses go instead into one Contacts API v3 import per 5,000 that creates them
  already unsubscribed (``unsubscribe-import:<id>``), so no contact ever exists subscribed.
- The adapter keeps no job state it needs across runs: ``poll`` gets the job's ops from the engine, which
  stores them with the job, so a job submitted before a crash is polled to its end after a restart. (The
  imports in flight are a run's own pacing, nothing more.)
- Cursors are the local UTC time at the START of a read, used with a five-minute overlap against clock
  skew; re-reading a few rows costs nothing because unchanged rows fingerprint the same. A contact
  edited during a read may carry its values from before the edit: the next read, from that start, has
  it again.
- Every list (books, members, contacts, suppressions, campaign activity) is paged by ``select``/``skip``
  in an order v2 does not name: the client overlaps the pages and reads again when one does not follow
  the one before (``client.py``), so a contact removed from a book, suppressed or edited during a read
  never hides another. A contact edited during the read may come twice; the later read is kept.
- ``activity`` (the feed of ``engine.activity_feed``) reads campaign opens, clicks, bounce and unsubscribe
  flags and totals since its cursor, with the same overlap; vendor-stable keys make re-reads harmless
  (``activity.py``).
- ``version`` hashes the address books (with member counts), the data fields, and the contacts and
  suppressions modified since the start of the current UTC day. Limits: a change that leaves every one
  of those the same (a contact moved from one book to another of the same size on the same call, with
  no other change) is not seen; and the token changes at midnight UTC with no data change, which makes a
  saved plan kept over midnight refused as stale (a safe failure).
- A field cannot be cleared through an import (an empty cell leaves the value alone), so an upsert that
  clears a field is rejected with that reason rather than reported done and silently not applied.
- A resubscribe the engine asks for goes through ``resubscribe-with-no-challenge``: the engine only asks
  when the rules allow it and the suppression reason permits it, and a challenge would leave the op
  pending, planned again and re-challenged on every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
import xxhash

from adapters.common import import_text, parse_cursor, settings_of
from adapters.dotdigital import jobs, rows, wire
from adapters.dotdigital.activity import read_activity
from adapters.dotdigital.books import read_books
from adapters.dotdigital.client import BEGINNING, DotdigitalClient, DotdigitalError
from adapters.dotdigital.jobs import (
    DELETION,
    MAX_ACTIVE_IMPORTS,
    UNSUBSCRIBE_IMPORT,
    poll_job,
)
from engine.activity_feed import ActivityFeed
from engine.contract import AdapterContext, Capabilities, JobStatus, Outcome, Snapshot, interrupted
from engine.errors import PermanentError, TransientError
from engine.plans import Op, OpKind
from engine.ruleset import FieldType, SecretRef, Side

WRITES = frozenset(
    {"create_list", "create_field", "opt_out_esp", "remove_member", "upsert_contact", "add_member"}
)
ROWS_PER_IMPORT = 10_000  # engine batch size; each batch is then cut to max_import_bytes per file
SUPPRESS_CHUNK = 1_000  # emails per bulk suppress call: a choice, v2 publishes no limit
UNSUBSCRIBE_IMPORT_CHUNK = 5_000  # contacts per v3 import: a choice, as v3's bulk delete takes 5,000
CURSOR_OVERLAP = timedelta(minutes=5)
RESERVED_BOOKS = frozenset({"Test", "All Contacts"})
_ENCODER = msgspec.json.Encoder(order="deterministic")


class DotdigitalSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[esp.settings]`` for ``adapter = "dotdigital"``."""

    api_user: str
    password: SecretRef
    endpoint: str = "https://r1-api.dotdigital.com"
    max_import_bytes: int = wire.MAX_IMPORT_BYTES
    address_book_limit: int = 100  # professional tier; 1,000 on enterprise
    list_visibility: str = "Private"
    # Imports of this adapter's own in flight at once: Dotdigital's limit, or fewer to leave room for
    # other integrations' imports on the account.
    max_active_imports: Annotated[int, msgspec.Meta(ge=1, le=MAX_ACTIVE_IMPORTS)] = MAX_ACTIVE_IMPORTS


class DotdigitalAdapter:
    """One Dotdigital account as the ESP side of a sync."""

    name: ClassVar[str] = "dotdigital"
    settings_type: ClassVar[type[msgspec.Struct]] = DotdigitalSettings

    def __init__(self, settings: DotdigitalSettings | Any, context: AdapterContext) -> None:
        self._settings = settings_of(settings, DotdigitalSettings)
        self._context = context
        self._http: list[httpx.AsyncClient] = []
        self._client: DotdigitalClient | None = None
        self._opening = asyncio.Lock()
        self._books: dict[str, int] = {}  # address book name -> id
        self._ids: dict[str, int] = {}  # lower-cased email -> contact id
        self._in_flight = jobs.shared(context.account_state, self._settings.max_active_imports)

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        return Capabilities(
            max_batch=ROWS_PER_IMPORT,
            max_list_name=128,
            reserved_list_names=RESERVED_BOOKS,
            field_name_max=20,
            field_name_pattern=r"^[A-Za-z0-9_-]{1,20}$",
            field_limits={"text": 246, "numeric": 50, "date": 50, "boolean": 50},
            frozen_when_suppressed=True,
            max_lists=settings_of(settings, DotdigitalSettings).address_book_limit,
            calls=2000,
            period_seconds=3600,
            writes=WRITES,
            activity=True,
        )

    async def _api(self) -> DotdigitalClient:
        """The client, opened on first use on the account's discovered regional endpoint."""
        async with self._opening:
            if self._client is None:
                self._client = await self._open()
            return self._client

    async def _open(self) -> DotdigitalClient:
        factory = self._context.http
        if factory is None:
            raise PermanentError("the Dotdigital adapter needs an HTTP client factory (AdapterContext.http)")
        password = self._context.secret(self._settings.password)
        configured = self._settings.endpoint.rstrip("/")
        http = factory(configured)
        self._http.append(http)
        client = DotdigitalClient(http, user=self._settings.api_user, password=password, retry_reads=True)
        endpoint = await client.discover_endpoint()
        if endpoint == configured:
            return client
        regional = factory(endpoint)
        self._http.append(regional)
        self._http.remove(http)
        await http.aclose()
        return DotdigitalClient(regional, user=self._settings.api_user, password=password, retry_reads=True)

    # -- reading ------------------------------------------------------------------------------------
    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        api = await self._api()
        started = datetime.now(UTC)
        since = parse_cursor(cursor)
        version = await self.version()
        books = [book async for book in api.address_books()]
        self._books = {book.name: book.id for book in books}
        in_books = await read_books(api, books)
        fields: dict[str, FieldType] = {
            f.name: rows.FIELD_TYPES.get(f.type, "text") for f in await api.data_fields()
        }
        window = BEGINNING if since is None else since - CURSOR_OVERLAP
        suppressions = {s.suppressed_contact.id: s async for s in api.suppressed_since(window)}
        contacts = api.contacts() if since is None else api.contacts_modified_since(window)
        if since is None:
            self._ids = {}
        read: dict[int, bytes] = {}  # by id: one edited during the read comes twice, newest last
        async for contact in contacts:
            self._ids[contact.email.lower()] = contact.id
            entry = suppressions.get(contact.id)
            reason = None if entry is None else entry.reason
            lists, left = in_books.lists(contact.id), in_books.left.get(contact.id)
            read[contact.id] = rows.encode_contact(contact, reason, lists, left)
        if since is None:
            # A suppressed contact the contact list left out still must not lose its opt-out. (In an
            # incremental read it is left to the next full one: its data fields cannot be read alone.)
            for entry in suppressions.values():
                gone = entry.suppressed_contact
                if gone.id not in read:
                    lists, left = in_books.lists(gone.id), in_books.left.get(gone.id)
                    read[gone.id] = rows.encode_contact(gone, entry.reason, lists, left)
        return Snapshot(
            complete=since is None,
            version=version,
            payloads=list(read.values()),
            decode=rows.decode,
            lists={name: str(book_id) for name, book_id in self._books.items()},
            fields=fields,
            cursor=started.isoformat(),
        )

    async def version(self) -> str:
        """Hash of books (with counts), fields, and today's modified contacts and suppressions."""
        api = await self._api()
        anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        books = sorted([(b.id, b.name, b.contacts) async for b in api.address_books()])
        fields = sorted((f.name, f.type) for f in await api.data_fields())
        modified = {c.id: c async for c in api.contacts_modified_since(anchor)}  # one per id
        contacts = sorted(modified.values(), key=lambda c: c.id)
        suppressed = sorted([(s.suppressed_contact.id, s.reason) async for s in api.suppressed_since(anchor)])
        blob = _ENCODER.encode([books, fields, contacts, suppressed])
        return f"{anchor:%Y-%m-%d}:{xxhash.xxh3_64_hexdigest(blob)}"

    async def activity(self, cursor: str | None, since: datetime) -> ActivityFeed:
        """Campaign events since the cursor (less the overlap) or, without one, since ``since``."""
        api = await self._api()
        started = datetime.now(UTC)
        after = parse_cursor(cursor)
        return await read_activity(api, since if after is None else after - CURSOR_OVERLAP, started)

    # -- writing ------------------------------------------------------------------------------------
    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if kind not in WRITES:
            return [Outcome(False, f"Dotdigital does not {kind.replace('_', ' ')}: not an ESP op")] * len(ops)
        api = await self._api()
        try:
            if kind == "create_list":
                return [await self._create_list(api, op) for op in ops]
            if kind == "create_field":
                return [await self._create_field(api, op) for op in ops]
            if kind == "opt_out_esp":
                return await self._opt_out(api, ops)
            if kind == "remove_member":
                return await self._remove_members(api, ops)
            return await self._import_ops(api, kind, ops)
        except DotdigitalError as refused:
            return [Outcome(False, str(refused))] * len(ops)

    async def _create_list(self, api: DotdigitalClient, op: Op) -> Outcome:
        name = (op.list or "").strip()
        if not name or name.casefold() in {r.casefold() for r in RESERVED_BOOKS}:
            return Outcome(False, f"{name!r} cannot be an address book name in Dotdigital")
        try:
            book = await api.create_address_book(name, visibility=self._settings.list_visibility)
        except DotdigitalError as refused:
            exists = refused.code == "ERROR_ADDRESSBOOK_DUPLICATE" and await self._book_id(name, refresh=True)
            return Outcome(True) if exists else Outcome(False, str(refused))
        self._books[book.name] = book.id
        return Outcome(True)

    async def _create_field(self, api: DotdigitalClient, op: Op) -> Outcome:
        wanted = rows.VENDOR_TYPES.get(op.field_type or "text")
        if not op.field or wanted is None:
            return Outcome(False, f"cannot create data field {op.field!r} of type {op.field_type!r}")
        try:
            await api.create_data_field(op.field, wanted)
        except DotdigitalError as refused:
            if refused.code != "ERROR_NON_UNIQUE_DATAFIELD":
                return Outcome(False, str(refused))
            existing = {f.name.upper(): f.type for f in await api.data_fields()}
            have = existing.get(op.field.upper(), wanted)
            if have != wanted:
                return Outcome(False, f"data field {op.field} already exists as {have}, not {wanted}")
        return Outcome(True)

    async def _opt_out(self, api: DotdigitalClient, ops: Sequence[Op]) -> list[Outcome]:
        """Bulk suppress; addresses Dotdigital does not know are created unsubscribed by a v3 import."""
        outcomes = [
            Outcome(True) if op.email else Outcome(False, "an opt-out without an email") for op in ops
        ]
        wanted = [index for index, op in enumerate(ops) if op.email]
        missing: set[str] = set()
        for start in range(0, len(wanted), SUPPRESS_CHUNK):
            emails = [str(ops[index].email) for index in wanted[start : start + SUPPRESS_CHUNK]]
            _, not_found = await api.suppress(emails)
            missing.update(email.lower() for email in not_found)
        unknown = [index for index in wanted if str(ops[index].email).lower() in missing]
        to_import = set(unknown)  # until its import is submitted, an unknown address is not taken
        taken: list[Outcome | None] = [None if i in to_import else o for i, o in enumerate(outcomes)]
        for start in range(0, len(unknown), UNSUBSCRIBE_IMPORT_CHUNK):
            chunk = unknown[start : start + UNSUBSCRIBE_IMPORT_CHUNK]
            emails = [str(ops[i].email) for i in chunk]

            async def submission(emails: list[str] = emails) -> str:
                return UNSUBSCRIBE_IMPORT + await api.import_unsubscribed(emails)

            try:
                job = await self._in_flight.submit(api, submission)
            except TransientError as lost:
                raise interrupted(lost, taken) from None
            for index in chunk:
                outcomes[index] = taken[index] = Outcome(True, job=job)
        return outcomes

    async def _import_ops(self, api: DotdigitalClient, kind: OpKind, ops: Sequence[Op]) -> list[Outcome]:
        """upsert_contact: one import without a book; add_member: one import per address book."""
        outcomes: list[Outcome | None] = [None] * len(ops)
        groups: dict[str | None, list[int]] = {}
        for index, op in enumerate(ops):
            refusal = rows.refusal(kind, op)
            if refusal is not None:
                outcomes[index] = Outcome(False, refusal)
            elif kind == "upsert_contact" and "opted_out" in op.changes:
                outcomes[index] = await self._resubscribe(api, op)
            else:
                groups.setdefault(op.list if kind == "add_member" else None, []).append(index)
        for name, indexes in groups.items():
            book = None if name is None else await self._book_id(name)
            if name is not None and book is None:
                for index in indexes:
                    outcomes[index] = Outcome(False, f"no address book named {name!r} (create_list first)")
                continue
            lines = [rows.import_row(ops[index]) for index in indexes]
            columns = sorted({column for line in lines for column in line} - {wire.EMAIL_COLUMN})
            position = 0
            for run in wire.split_for_import(lines, columns, max_bytes=self._settings.max_import_bytes):
                members = indexes[position : position + len(run)]
                position += len(run)
                submission = partial(
                    api.import_contacts,
                    run,
                    address_book_id=book,
                    columns=columns,
                    max_bytes=self._settings.max_import_bytes,
                )
                try:
                    job = await self._in_flight.submit(api, submission)
                except ValueError as too_big:
                    for index in members:
                        outcomes[index] = Outcome(False, f"the contact's import row is too large: {too_big}")
                    continue
                except TransientError as lost:
                    raise interrupted(lost, outcomes) from None
                for index in members:
                    outcomes[index] = Outcome(True, job=job)
        return [outcome or Outcome(False, "not submitted") for outcome in outcomes]

    async def _resubscribe(self, api: DotdigitalClient, op: Op) -> Outcome:
        data = {name: import_text(change.new) for name, change in op.changes.items() if name != "opted_out"}
        try:
            result = await api.resubscribe(str(op.email), data, challenge=False)
        except DotdigitalError as refused:
            return Outcome(False, str(refused))
        if result.status == "ContactAdded":
            return Outcome(True)
        return Outcome(False, f"Dotdigital did not resubscribe the contact ({result.status})")

    async def _remove_members(self, api: DotdigitalClient, ops: Sequence[Op]) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome(True)] * len(ops)
        groups: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            if not op.email or not op.list:
                outcomes[index] = Outcome(False, "a remove_member op needs an email and a list")
            else:
                groups.setdefault(op.list, []).append(index)
        for name, indexes in groups.items():
            book = await self._book_id(name)
            if book is None:
                continue  # no such book: nobody is a member of it, which is what the op asks for
            if any(str(ops[i].email).lower() not in self._ids for i in indexes):
                async for member in api.address_book_members(book, with_full_data=False):
                    self._ids[member.email.lower()] = member.id
            found = [i for i in indexes if str(ops[i].email).lower() in self._ids]
            if not found:
                continue  # not in the account: not a member either
            ids = sorted({self._ids[str(ops[i].email).lower()] for i in found})
            try:
                job = DELETION + await api.remove_from_address_book(book, ids)
            except TransientError as lost:
                done = {i for i, outcome in enumerate(outcomes) if outcome.job is not None or not outcome.ok}
                raise interrupted(lost, [o if i in done else None for i, o in enumerate(outcomes)]) from None
            for index in found:
                outcomes[index] = Outcome(True, job=job)
        return outcomes

    async def _book_id(self, name: str, *, refresh: bool = False) -> int | None:
        """An address book's id by name (case-insensitive, as Dotdigital's names are unique that way)."""
        if refresh or name not in self._books:
            self._books = {book.name: book.id async for book in (await self._api()).address_books()}
        if name in self._books:
            return self._books[name]
        folded = name.casefold()
        return next((i for n, i in self._books.items() if n.casefold() == folded), None)

    # -- jobs ---------------------------------------------------------------------------------------
    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        """A job's state; once terminal, one outcome per op of ``ops`` (the job's, in written order)."""
        status = await poll_job(await self._api(), job, ops)
        if status.terminal:
            self._in_flight.ended(job)
        return status

    async def flush(self) -> None:
        """Nothing to do: every write Dotdigital accepted is already durable on its side."""

    async def aclose(self) -> None:
        clients, self._http, self._client = self._http, [], None
        for http in clients:
            await http.aclose()
