"""The Constant Contact adapter: the ESP side of a sync, on the typed v3 client (``client.py``).

Why it looks the way it does:

- Lists: one contact list per integrated campaign (names from the engine's ops), plus the master list of
  every synced contact (``master_list`` in the settings, "All Workbooks Contacts" by default, as Workbooks'
  own integration names it), created on first need: every contact import joins it, because a JSON import
  must name at least one list.
- Contact writes are bulk activities that Constant Contact finishes later: ``upsert_contact`` is a
  ``contacts_json_import`` (cut to stay under the 4 MB the vendor reads, beyond which it silently drops
  rows), ``add_member`` and ``remove_member`` are ``add_list_memberships``/``remove_list_memberships`` of
  up to 500 contact ids. Each answers ``Outcome(job=<activity id>)``; ``poll`` turns a completed
  activity's ``activity_errors`` into one outcome per op. At most 1,000 activities may be queued: a
  refusal for that is waited out here (``QUEUE_TRIES`` times) before it reaches the engine as transient.
- Lists, custom fields, opt-outs and resubscribes are direct calls that answer at once.
- Consent: an opt-out is ``permission_to_send: unsubscribed`` through ``PUT /contacts/{id}`` (read first,
  since a PUT clears the scalars it is not given), or a new unsubscribed contact for an unknown address.
  A contact who opted out themselves (``opt_out_source`` Contact) is never re-added: a resubscribe or an
  ``add_member`` for them is refused here with that reason, as Constant Contact forbids it. An account
  opt-out may be lifted by a resubscribe the engine asks for (``permission_to_send: explicit``).
- The adapter keeps no job state (``poll`` gets the job's ops from the engine), only caches: list and
  field ids, and each known contact's id and consent, refreshed from the contacts updated since its last
  read when an op names a contact it has not seen.
- Cursors are the local UTC time at the START of a read, used with a five-minute overlap; an incremental
  read asks for contacts updated since then (deleted ones too, reported as deleted) and for those who
  opted out since then, in case an opt-out does not move ``updated_at``.
- Every list (contacts, lists, custom fields, campaigns, tracking reports) pages by v3's cursor
  (``_links.next``), which names the record the next page starts at (seek paging; the spec's example
  cursor decodes to ``next=<id>``), not a position: a contact opted out, edited or deleted during a read
  moves no other across a page boundary, so no page is read twice to check. A contact edited during the
  read may come twice (the first read is kept) and with its values from before the edit; the next read,
  from the moment this one began, has it again.
- ``version`` hashes the lists (with member counts), the custom fields, and the contacts updated or opted
  out since the start of the current UTC day (the same limits as the Dotdigital adapter's token).
- Auth: OAuth2 bearer tokens (``oauth.py``) from the engine's token store, the rule set side's grant in
  the state store; `listsync auth constant-contact` (``authorize.py``) stores the first one.
- Rate: 4 calls a second and 10,000 a day (``Capabilities.calls`` and ``daily_calls``: the engine keeps a
  bucket for each); a 429 may still come when another application of the account spent the day.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

import anyio
import httpx
import msgspec
import xxhash

from adapters.common import parse_cursor, settings_of
from adapters.constantcontact import rows, wire
from adapters.constantcontact.activity import read_activity
from adapters.constantcontact.client import (
    API_URL,
    ConstantContactBusy,
    ConstantContactClient,
    ConstantContactError,
)
from adapters.constantcontact.oauth import AUTH_URL, REDIRECT_URI, TokenEndpoint, TokenKeeper
from engine.activity_feed import ActivityFeed
from engine.contract import AdapterContext, Capabilities, JobStatus, Outcome, Snapshot
from engine.errors import PermanentError
from engine.plans import Op, OpKind
from engine.ruleset import FieldType, SecretRef, Side

T = TypeVar("T")
WRITES = frozenset(
    {"create_list", "create_field", "opt_out_esp", "remove_member", "upsert_contact", "add_member"}
)
ROWS_PER_BATCH = 10_000  # engine batch size; each batch is then cut to the 4 MB an import may carry
IDS_PER_ACTIVITY = 500  # contact ids one membership activity takes
CUSTOM_FIELD_LIMIT = 100
QUEUE_TRIES = 10
CURSOR_OVERLAP = timedelta(minutes=5)
RUNNING = frozenset({"initialized", "processing"})
SELF_OPTED_OUT = (
    "the contact unsubscribed themselves in Constant Contact (opt_out_source Contact), and Constant Contact "
    "never lets an account re-add such a contact: only they can opt back in"
)
_ERROR_LINE = re.compile(r"^(?:Line (\d+)|Contact \S+) \(([^)]*)\): (.*)$")
_ENCODER = msgspec.json.Encoder(order="deterministic")


class ConstantContactSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[esp.settings]`` for ``adapter = "constant-contact"``."""

    client_id: str  # the application's API key
    client_secret: SecretRef
    # Where Constant Contact sends the browser back after consent (`listsync auth constant-contact`);
    # it must be registered, exactly, among the application's redirect URIs.
    redirect_uri: str = REDIRECT_URI
    api_url: str = API_URL
    auth_url: str = AUTH_URL
    master_list: str = "All Workbooks Contacts"
    list_limit: int = 1000  # the practical cap per account; Constant Contact advises fewer than 100
    max_import_bytes: int = wire.MAX_IMPORT_BYTES


@dataclass(frozen=True)
class _Known:
    id: str
    opted_out: bool
    self_opted_out: bool


class ConstantContactAdapter:
    """One Constant Contact account as the ESP side of a sync."""

    name: ClassVar[str] = "constant-contact"
    settings_type: ClassVar[type[msgspec.Struct]] = ConstantContactSettings

    def __init__(self, settings: ConstantContactSettings | Any, context: AdapterContext) -> None:
        self._settings = settings_of(settings, ConstantContactSettings)
        self._context = context
        self._http: list[httpx.AsyncClient] = []
        self._client: ConstantContactClient | None = None
        self._opening = asyncio.Lock()
        self._lists: dict[str, str] = {}  # list name -> id
        self._fields: dict[str, str] = {}  # custom field name -> id
        self._known: dict[str, _Known] = {}  # lower-cased email -> id and consent
        self._read_at: datetime | None = None
        self._campaigns: dict[str, tuple[str, tuple[str, ...]]] = {}  # campaign -> (activity, list ids)

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        return Capabilities(
            max_batch=ROWS_PER_BATCH,
            max_list_name=255,
            field_name_max=50,
            field_name_pattern=r"^[A-Za-z0-9_]{1,50}$",
            # The contact's own text properties are listed among the account's fields, so the total
            # counts them beside the 100 custom fields.
            field_limits={"total": CUSTOM_FIELD_LIMIT + len(rows.STANDARD_FIELDS)},
            max_lists=settings_of(settings, ConstantContactSettings).list_limit,
            frozen_when_suppressed=True,
            calls=4,
            period_seconds=1.0,
            daily_calls=10_000,
            writes=WRITES,
            activity=True,
        )

    def __repr__(self) -> str:
        return f"ConstantContactAdapter({self._settings.api_url!r})"

    async def _api(self) -> ConstantContactClient:
        async with self._opening:
            if self._client is None:
                factory = self._context.http
                if factory is None:
                    raise PermanentError(
                        "the Constant Contact adapter needs an HTTP client factory (AdapterContext.http)"
                    )
                api, auth = (
                    factory(self._settings.api_url.rstrip("/")),
                    factory(self._settings.auth_url.rstrip("/")),
                )
                self._http += [api, auth]
                if self._context.tokens is None:
                    raise PermanentError(
                        "the Constant Contact adapter keeps its grant in the engine's token store "
                        "(AdapterContext.tokens), and was opened without one"
                    )
                endpoint = TokenEndpoint(
                    auth,
                    client_id=self._settings.client_id,
                    client_secret=self._context.secret(self._settings.client_secret),
                )
                self._client = ConstantContactClient(
                    api, TokenKeeper(endpoint, self._context.tokens), retry_reads=True
                )
            return self._client

    # -- reading ------------------------------------------------------------------------------------
    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        api = await self._api()
        started = datetime.now(UTC)
        since = parse_cursor(cursor)
        version = await self.version()
        await self._read_lists(api)
        types = {f.name: rows.FIELD_TYPES.get(f.type, "text") async for f in self._read_fields(api)}
        fields: dict[str, FieldType] = {**dict.fromkeys(rows.STANDARD_FIELDS, "text"), **types}
        field_names = {i: n for n, i in self._fields.items()}
        list_names = {i: n for n, i in self._lists.items()}
        payloads: list[bytes] = []
        deleted: list[str] = []
        seen: set[str] = set()
        if since is None:
            self._known = {}
        async for contact in self._changed(api, since):
            if contact.contact_id in seen or contact.email_address is None:
                continue
            seen.add(contact.contact_id)
            if contact.deleted_at:
                deleted.append(contact.email_address.address.lower())
                self._known.pop(contact.email_address.address.lower(), None)
                continue
            self._remember(contact)
            payloads.append(rows.encode_contact(contact, field_names, list_names))
        self._read_at = started
        return Snapshot(
            complete=since is None,
            version=version,
            payloads=payloads,
            decode=rows.decode,
            deleted=deleted,
            lists=dict(self._lists),
            fields=fields,
            cursor=started.isoformat(),
        )

    async def _changed(self, api: ConstantContactClient, since: datetime | None) -> Any:
        if since is None:
            async for contact in api.contacts():
                yield contact
            return
        window = since - CURSOR_OVERLAP
        async for contact in api.contacts(updated_after=window, status="all"):
            yield contact
        async for contact in api.contacts(optout_after=window):
            yield contact

    async def _read_lists(self, api: ConstantContactClient) -> None:
        self._lists = {lst.name: lst.list_id async for lst in api.lists()}

    async def _read_fields(self, api: ConstantContactClient) -> Any:
        self._fields = {}
        async for made in api.custom_fields():
            self._fields[made.name] = made.custom_field_id
            yield made

    def _remember(self, contact: wire.Contact) -> None:
        if contact.email_address is not None:
            known = _Known(contact.contact_id, rows.opted_out(contact), rows.self_opted_out(contact))
            self._known[contact.email_address.address.lower()] = known

    async def version(self) -> str:
        """Hash of lists (with counts), custom fields, and today's updated and opted-out contacts."""
        api = await self._api()
        anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        lists = sorted([(x.list_id, x.name, x.membership_count) async for x in api.lists(counts=True)])
        fields = sorted([(f.custom_field_id, f.name, f.type) async for f in api.custom_fields()])
        changed = [c async for c in api.contacts(updated_after=anchor, status="all")]
        opted = [c async for c in api.contacts(optout_after=anchor)]
        contacts = sorted(changed + opted, key=lambda c: c.contact_id)
        blob = _ENCODER.encode([lists, fields, contacts])
        return f"{anchor:%Y-%m-%d}:{xxhash.xxh3_64_hexdigest(blob)}"

    async def activity(self, cursor: str | None, since: datetime) -> ActivityFeed:
        """Campaign events since the cursor (less the overlap) or, without one, since ``since``."""
        api = await self._api()
        started = datetime.now(UTC)
        after = parse_cursor(cursor)
        if not self._lists:
            await self._read_lists(api)
        names = {i: n for n, i in self._lists.items()}
        window = since if after is None else after - CURSOR_OVERLAP
        return await read_activity(api, window, started, names, self._campaigns)

    # -- writing ------------------------------------------------------------------------------------
    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if kind not in WRITES:
            return [
                Outcome(False, f"Constant Contact does not {kind.replace('_', ' ')}: not an ESP op")
            ] * len(ops)
        api = await self._api()
        try:
            if kind == "create_list":
                return [await self._create_list(api, op) for op in ops]
            if kind == "create_field":
                return [await self._create_field(api, op) for op in ops]
            if kind == "opt_out_esp":
                return [await self._opt_out(api, op) for op in ops]
            if kind == "upsert_contact":
                return await self._upserts(api, ops)
            return await self._memberships(api, kind, ops)
        except ConstantContactError as refused:
            return [Outcome(False, str(refused))] * len(ops)

    async def _create_list(self, api: ConstantContactClient, op: Op) -> Outcome:
        name = (op.list or "").strip()
        if not name or len(name) > 255:
            return Outcome(
                False, f"{name!r} cannot be a contact list name in Constant Contact (1 to 255 characters)"
            )
        try:
            made = await api.create_list(name)
        except ConstantContactError as refused:
            exists = refused.status == 409 and await self._list_id(name, refresh=True) is not None
            return Outcome(True) if exists else Outcome(False, str(refused))
        self._lists[made.name] = made.list_id
        return Outcome(True)

    async def _create_field(self, api: ConstantContactClient, op: Op) -> Outcome:
        if op.field in rows.STANDARD_FIELDS:
            return Outcome(True)  # a property every contact has
        wanted = rows.VENDOR_TYPES.get(op.field_type or "text")
        if not op.field or wanted is None:
            return Outcome(False, f"cannot create custom field {op.field!r} of type {op.field_type!r}")
        try:
            made = await api.create_custom_field(op.field, wanted)
        except ConstantContactError as refused:
            if refused.status != 409:
                return Outcome(False, str(refused))
            existing = {f.name.lower(): f async for f in self._read_fields(api)}
            have = existing.get(op.field.lower())
            if have is None:
                return Outcome(False, str(refused))
            if have.type != wanted:
                return Outcome(False, f"custom field {op.field} already exists as {have.type}, not {wanted}")
            return Outcome(True)
        if made.name != op.field:
            return Outcome(False, f"Constant Contact named the custom field {made.name!r}, not {op.field!r}")
        self._fields[made.name] = made.custom_field_id
        return Outcome(True)

    async def _opt_out(self, api: ConstantContactClient, op: Op) -> Outcome:
        """Unsubscribe a known contact (its scalars kept); create an unknown address unsubscribed,
        or, when it was made meanwhile (another run of the rule set, a person), unsubscribe that."""
        if not op.email:
            return Outcome(False, "an opt-out without an email")
        known = await self._contact(api, op.email)
        try:
            if known is None:
                body = {
                    "email_address": {"address": op.email, "permission_to_send": "unsubscribed"},
                    "create_source": "Account",
                }
                try:
                    self._remember(await api.create_contact(body))
                except ConstantContactError as refused:
                    known = await self._contact(api, op.email) if refused.status == 409 else None
                    if known is None:
                        raise
            if known is not None and not known.opted_out:
                self._remember(await self._set_permission(api, known.id, "unsubscribed"))
        except ConstantContactError as refused:
            return Outcome(False, str(refused))
        return Outcome(True)

    async def _set_permission(
        self, api: ConstantContactClient, contact_id: str, permission: str
    ) -> wire.Contact:
        current = await api.contact(contact_id)
        address = current.email_address.address if current.email_address else ""
        body: dict[str, Any] = {
            name: getattr(current, name) for name in rows.STANDARD_FIELDS if getattr(current, name)
        }
        body |= {
            "email_address": {"address": address, "permission_to_send": permission},
            "update_source": "Account",
        }
        return await api.put_contact(contact_id, body)

    async def _upserts(self, api: ConstantContactClient, ops: Sequence[Op]) -> list[Outcome]:
        """Resubscribes one by one (then their fields with the rest); every other upsert in imports
        into the master list."""
        outcomes: list[Outcome | None] = [None] * len(ops)
        pending: list[int] = []
        for index, op in enumerate(ops):
            refusal = rows.refusal("upsert_contact", op)
            if refusal is not None:
                outcomes[index] = Outcome(False, refusal)
            elif "opted_out" in op.changes:
                resubscribed = outcomes[index] = await self._resubscribe(api, op)
                if resubscribed.ok and len(op.changes) > 1:
                    pending.append(index)  # the fields that changed while they were opted out
            else:
                pending.append(index)
        if pending:
            master = await self._master(api)
            lines = [rows.import_row(ops[index]) for index in pending]
            position = 0
            limit = self._settings.max_import_bytes
            for run in wire.split_for_import(lines, [master], max_bytes=limit):
                members, position = pending[position : position + len(run)], position + len(run)
                try:
                    job = await self._queued(partial(api.import_contacts, run, [master], max_bytes=limit))
                except ValueError as too_big:
                    outcome = Outcome(False, f"the contact's import row is too large: {too_big}")
                else:
                    outcome = Outcome(True, job=job)
                for index in members:
                    outcomes[index] = outcome
        return [outcome or Outcome(False, "not submitted") for outcome in outcomes]

    async def _resubscribe(self, api: ConstantContactClient, op: Op) -> Outcome:
        known = await self._contact(api, str(op.email))
        if known is None or not known.opted_out:
            return Outcome(
                False, "the contact is not unsubscribed in Constant Contact; nothing to resubscribe"
            )
        if known.self_opted_out:
            return Outcome(False, SELF_OPTED_OUT)
        try:
            self._remember(await self._set_permission(api, known.id, "explicit"))
        except ConstantContactError as refused:
            return Outcome(False, str(refused))
        return Outcome(True)

    async def _memberships(
        self, api: ConstantContactClient, kind: OpKind, ops: Sequence[Op]
    ) -> list[Outcome]:
        adding = kind == "add_member"
        outcomes: list[Outcome] = [Outcome(True)] * len(ops)
        groups: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            if not op.email or not op.list:
                outcomes[index] = Outcome(False, f"a {kind} op needs an email and a list")
            else:
                groups.setdefault(op.list, []).append(index)
        await self._learn([str(ops[i].email) for indexes in groups.values() for i in indexes])
        for name, indexes in groups.items():
            list_id = await self._list_id(name)
            if list_id is None:
                if adding:
                    for index in indexes:
                        outcomes[index] = Outcome(
                            False, f"no contact list named {name!r} (create_list first)"
                        )
                continue  # no such list: nobody is a member of it, which is what a removal asks for
            members: list[tuple[int, str]] = []
            for index in indexes:
                known = self._known.get(str(ops[index].email).lower())
                refusal = _refusal(known) if adding else None
                if refusal is not None:
                    outcomes[index] = Outcome(False, refusal)
                elif known is not None:
                    members.append((index, known.id))
            for start in range(0, len(members), IDS_PER_ACTIVITY):
                chunk = members[start : start + IDS_PER_ACTIVITY]
                ids = sorted({contact_id for _, contact_id in chunk})
                call = api.add_to_lists if adding else api.remove_from_lists
                job = await self._queued(partial(call, ids, [list_id]))
                for index, _ in chunk:
                    outcomes[index] = Outcome(True, job=job)
        return outcomes

    async def _queued(self, submit: Callable[[], Awaitable[T]]) -> T:
        """Submit a bulk activity, waiting while the account has 1,000 queued."""
        for attempt in range(QUEUE_TRIES):
            try:
                return await submit()
            except ConstantContactBusy as busy:
                if attempt == QUEUE_TRIES - 1:
                    raise
                await anyio.sleep(busy.retry_after or 60.0)
        raise AssertionError("unreachable")

    async def _master(self, api: ConstantContactClient) -> str:
        name = self._settings.master_list
        found = await self._list_id(name)
        if found is not None:
            return found
        if not (await self._create_list(api, Op("create_list", list=name))).ok:
            raise PermanentError(f"cannot create the master list {name!r} in Constant Contact")
        found = await self._list_id(name)
        if found is None:
            raise PermanentError(f"the master list {name!r} is missing right after it was created")
        return found

    async def _list_id(self, name: str, *, refresh: bool = False) -> str | None:
        """A list's id by name (case-insensitive, as Constant Contact's names are unique that way)."""
        if refresh or name not in self._lists:
            await self._read_lists(await self._api())
        folded = name.casefold()
        return self._lists.get(name) or next(
            (i for n, i in self._lists.items() if n.casefold() == folded), None
        )

    async def _contact(self, api: ConstantContactClient, email: str) -> _Known | None:
        known = self._known.get(email.lower())
        if known is None:
            async for contact in api.contacts(email=email):
                self._remember(contact)
            known = self._known.get(email.lower())
        return known

    async def _learn(self, emails: Sequence[str]) -> None:
        """Learn the ids of contacts not seen yet: those updated since the last read (or all)."""
        if all(email.lower() in self._known for email in emails):
            return
        api = await self._api()
        started = datetime.now(UTC)
        window = None if self._read_at is None else self._read_at - CURSOR_OVERLAP
        async for contact in api.contacts(updated_after=window):
            self._remember(contact)
        self._read_at = started

    # -- jobs ---------------------------------------------------------------------------------------
    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        """An activity's state; once terminal, one outcome per op (the job's, in written order)."""
        activity = await (await self._api()).activity(job)
        if activity.state in RUNNING:
            return JobStatus(activity.state, False, detail=f"{activity.percent_done}% done")
        if activity.state != "completed":
            said = "; ".join(activity.activity_errors) or "no detail"
            reason = f"the Constant Contact activity ended {activity.state}: {said}"
            return JobStatus(activity.state, True, tuple(Outcome(False, reason) for _ in ops), detail=said)
        faults = _faults(activity.activity_errors, ops)
        outcomes = tuple(Outcome(False, faults[i]) if i in faults else Outcome(True) for i in range(len(ops)))
        detail = f"{len(faults)} of {len(ops)} rows refused" if faults else None
        return JobStatus(activity.state, True, outcomes, detail=detail)

    async def flush(self) -> None:
        """Nothing to do: every write Constant Contact accepted is durable on its side."""

    async def aclose(self) -> None:
        clients, self._http, self._client = self._http, [], None
        for http in clients:
            await http.aclose()


def _refusal(known: _Known | None) -> str | None:
    if known is None:
        return "no such contact in Constant Contact (upsert_contact first)"
    if known.self_opted_out:
        return SELF_OPTED_OUT
    if known.opted_out:
        return "the contact is unsubscribed in Constant Contact; unsubscribed contacts join no list"
    return None


def _faults(errors: Sequence[str], ops: Sequence[Op]) -> dict[int, str]:
    """Op index -> reason, from ``activity_errors`` such as ``Line 3 (ann@example.com): reason`` (an
    import's row) or ``Contact <id> (ann@example.com): reason`` (a membership's): by the email when it
    names one of the ops, else by the import's line (its rows are in op order)."""
    where = {str(op.email).lower(): index for index, op in enumerate(ops)}
    faults: dict[int, str] = {}
    for error in errors:
        matched = _ERROR_LINE.match(error)
        if matched is None:
            continue
        line, email, reason = matched[1], matched[2].strip().lower(), matched[3]
        index = where.get(email, int(line) - 1 if line else -1)
        if 0 <= index < len(ops):
            faults.setdefault(index, reason)
    return faults
