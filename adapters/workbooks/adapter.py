"""The Workbooks CRM adapter: people and sales leads in, opt-outs, flags, field updates and activities out.

Workbooks is the CRM side of a sync. The adapter reads people, sales leads, their campaign
memberships, the campaigns and their member statuses through the typed client
(`adapters.workbooks.client`; it never speaks HTTP itself) and writes back only what a CRM takes from
an ESP: opt-outs, the undeliverable flag, mapped field values and online activities. It never creates
or deletes people, leads or campaigns: those are the CRM users' records. Row translation lives in
`adapters.workbooks.rows`, saving with the stale retry in `adapters.workbooks.saving`,
`record_activity` in `adapters.workbooks.activities`, and what a membership's status id stands for
in `adapters.workbooks.statuses`.
Decisions:
- Incremental snapshots follow the reference's delta pattern (§8): `updated_at >= cursor`
  (equal timestamps are re-read, never missed), tombstones included, paged in order of id so that
  an edit during the read cannot push a record between two pages. The cursor is the newest
  `updated_at` that existed when the read began (ISO 8601): whatever changes during the read is
  read again by the next delta. A person or lead whose membership changed is re-read by id, and every
  changed record's memberships are re-read whole, so each row carries all its memberships. So is
  the holder of a membership whose status was renamed or deleted since the cursor
  (`adapters.workbooks.statuses`).
- A deleted record is reported in `Snapshot.deleted` by email, unless another live person or lead
  still has that email. An email changed on a record is not seen as a deletion of the old one: full
  snapshots (on the engine's schedule) settle that.
- `version()` is the newest (`updated_at`, `id`, `lock_version`) and the row count, tombstones
  included, of people, leads, memberships and campaigns: four one-row reads. Two edits in the same
  second of different records can leave it unchanged (`updated_at` has one-second resolution).
- Writes find records through the last snapshot's email index, or a filtered read by email. An op
  applies to every record with that email, of the op's record kind when there are any (an opt-out
  must reach every duplicate). A stale `lock_version` reloads the record's version and retries once.
- Workbooks publishes no rate-limit numbers (reference §8), so `Capabilities.calls` is left None.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
import xxhash

from adapters.common import settings_of
from adapters.workbooks import activities, campaign_totals, rows, statuses
from adapters.workbooks.client import Filter, WorkbooksClient
from adapters.workbooks.rows import KINDS, LEAD, PERSON, Kind
from adapters.workbooks.saving import Ref, save
from adapters.workbooks.statuses import Attribute
from adapters.workbooks.wire import MAX_BATCH, Value
from engine.contract import AdapterContext, Capabilities, JobStatus, Outcome, Snapshot
from engine.errors import ListsyncError
from engine.http import budgeted_client
from engine.plans import Op, OpKind
from engine.records import Campaign
from engine.ruleset import SecretRef, Side

WRITES: frozenset[str] = frozenset({"opt_out_crm", "update_crm", "mark_undeliverable_crm", "record_activity"})
CHUNK = 50  # ids or emails per filtered read


class WorkbooksSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[crm.settings]`` for ``adapter = "workbooks"``: give `api_key`, or `username` and `password`.

    `columns` limits what is read of people and leads (None: every column the metadata offers).
    `campaign_fields` are offered to list-name templates; those the database lacks are left out.
    `member_status` is the attribute of a member status the rules' `unsubscribed_statuses` compare
    against: its `name` (an unnamed status falls back to its `status`) or its `status`
    (`adapters.workbooks.statuses`).
    """

    base_url: str = "https://secure.workbooks.com"
    api_key: SecretRef | None = None
    username: str | None = None
    password: SecretRef | None = None
    page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    undeliverable_field: str = "email_address_undeliverable"
    campaign_fields: list[str] = msgspec.field(default_factory=lambda: [rows.PUBLIC_NAME])
    columns: list[str] | None = None
    member_status: Attribute = "name"

    def __post_init__(self) -> None:
        session = self.username is not None or self.password is not None
        if self.api_key is not None and session:
            raise ValueError("give either `api_key`, or `username` and `password`, not both")
        if self.api_key is None and (self.username is None or self.password is None):
            raise ValueError("Workbooks needs `api_key`, or both `username` and `password`")


class WorkbooksAdapter:
    """The CRM side of a sync, on one Workbooks database."""

    name: ClassVar[str] = "workbooks"
    settings_type: ClassVar[type[msgspec.Struct]] = WorkbooksSettings

    def __init__(self, settings: WorkbooksSettings, context: AdapterContext) -> None:
        self._settings = settings_of(settings, WorkbooksSettings)
        self._context = context
        self._http: httpx.AsyncClient | None = None
        self._client: WorkbooksClient | None = None
        self._columns: dict[str, list[str]] | None = None
        self._campaign_columns: list[str] | None = None
        self._offered: dict[str, frozenset[str]] = {}  # record type -> field names, from the metadata
        self._campaigns: list[Campaign] | None = None
        self._refs: dict[str, dict[tuple[str, int], Ref[Kind]]] = {}  # email -> records with it
        self._emails: dict[tuple[str, int], str] = {}  # (kind, id) -> the email it is indexed under

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        chosen = settings_of(settings, WorkbooksSettings)
        lengths = {"key": 20, "name": 255} | {name: 255 for name in chosen.campaign_fields}
        writes = WRITES if side == "crm" else frozenset()
        return Capabilities(max_batch=MAX_BATCH, campaign_field_lengths=lengths, writes=writes)

    async def __aenter__(self) -> WorkbooksAdapter:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    def _api(self) -> WorkbooksClient:
        if self._client is None:
            settings, secret = self._settings, self._context.secret
            api_key = secret(settings.api_key) if settings.api_key is not None else None
            password = secret(settings.password) if settings.password is not None else None
            make = self._context.http
            http = (
                make(settings.base_url) if make else budgeted_client(settings.base_url, self._context.budget)
            )
            if api_key is not None:
                self._client = WorkbooksClient(http, api_key=api_key, retry_reads=True)
            else:
                self._client = WorkbooksClient(
                    http, username=settings.username, password=password, retry_reads=True
                )
            self._http = http
        return self._client

    # -- reads --
    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        tops = await self._newest_records()  # before reading: a change during the read moves them
        since = datetime.fromisoformat(cursor) if cursor else None
        newest = since
        for top in tops.values():
            newest = rows.newer(newest, top)
        columns = await self._read_columns()
        self._campaigns = campaigns = await self._read_campaigns()
        api, page = self._api(), self._settings.page_size
        changed: dict[str, dict[int, dict[str, Any]]] = {kind.name: {} for kind in KINDS}
        for kind in KINDS:
            async for record in api.changed_since(
                kind.controller, since, columns[kind.controller], page_size=page
            ):
                changed[kind.name][record["id"]] = record
        found = await statuses.read_statuses(
            api, (c.key for c in campaigns), self._settings.member_status, since, page_size=page
        )
        members = [m async for m in api.memberships_since(since, rows.MEMBER_COLUMNS, page_size=page)]
        if since is not None:
            members += [m async for m in self._members_with(found.changed)]
            members = await self._delta_members(changed, members, columns)
        else:
            self._refs, self._emails = {}, {}
        memberships = rows.memberships(members, found.of)
        payloads, deleted = [], []
        for kind in KINDS:
            for record in changed[kind.name].values():
                if record.get("is_deleted"):
                    self._forget(kind, record["id"])
                    email = rows.email_of(kind, record)
                    if since is not None and email is not None:
                        deleted.append(email)
                    continue
                self._remember(kind, record)
                party = memberships.get((kind.class_name, record["id"]), {})
                payload = rows.encode_row(kind, record, party, self._settings.undeliverable_field)
                if payload is not None:
                    payloads.append(payload)
        return Snapshot(
            complete=since is None,
            version=_version_of(tops),
            payloads=payloads,
            decode=rows.decode,
            deleted=await self._gone(deleted),
            campaigns=self._campaigns,
            cursor=newest.isoformat() if newest is not None else cursor,
            columns=self._offered,
        )

    async def _delta_members(
        self,
        changed: dict[str, dict[int, dict[str, Any]]],
        members: Sequence[dict[str, Any]],
        columns: dict[str, list[str]],
    ) -> list[dict[str, Any]]:
        """Complete a delta: read the records of changed memberships, then all memberships of each."""
        touched: dict[str, set[int]] = {kind.name: set() for kind in KINDS}
        for member in members:
            party = rows.party_of(member)
            if party is not None:
                touched[party[0].name].add(party[1])
        complete: list[dict[str, Any]] = []
        for kind in KINDS:
            found = changed[kind.name]
            missing = sorted(touched[kind.name] - set(found))
            async for record in self._by_ids(kind.controller, missing, columns[kind.controller]):
                found[record["id"]] = record
            live = sorted(i for i, r in found.items() if not r.get("is_deleted"))
            complete += [member async for member in self._members_of(kind, live)]
        return complete

    async def version(self) -> str:
        """A hash of the newest (`updated_at`, `id`, `lock_version`) and the count, per record type."""
        return _version_of(await self._newest_records())

    async def _newest_records(self) -> dict[str, dict[str, Any]]:
        """Per record type, its most recently updated record (tombstones included) and the row count."""
        api, tops = self._api(), {}
        tombstones: list[Filter] = [("is_deleted", "eq", False), ("is_deleted", "eq", True)]
        for controller in (rows.PEOPLE, rows.LEADS, rows.MEMBERS, rows.CAMPAIGNS):
            page = await api.read(
                controller,
                select=["id", "lock_version", "updated_at"],
                filters=tombstones,
                match="or",
                sort=[("updated_at", "DESC"), ("id", "DESC")],
                limit=1,
            )
            tops[controller] = {**(page.data[0] if page.data else {}), "total": page.total}
        return tops

    async def _read_columns(self) -> dict[str, list[str]]:
        """Columns to read per type: the metadata's (or the settings' that exist), plus the essentials."""
        if self._columns is None:
            classes = [kind.class_name for kind in KINDS] + [rows.CAMPAIGN_CLASS]
            offered = await self._api().metadata_types(classes)
            last = self._settings.undeliverable_field
            self._columns = {}
            for kind in KINDS:
                available = offered.get(kind.controller, ())
                wanted = available if self._settings.columns is None else self._settings.columns
                chosen = [c for c in wanted if c in available or not available]
                self._columns[kind.controller] = list(dict.fromkeys([*kind.essentials(last), *chosen]))
            campaign = offered.get(rows.CAMPAIGNS)
            fields = self._settings.campaign_fields
            self._campaign_columns = [f for f in fields if campaign is None or f in campaign]
            types = {kind.name: kind.controller for kind in KINDS} | {"campaign": rows.CAMPAIGNS}
            self._offered = {
                name: frozenset(offered[path]) for name, path in types.items() if offered.get(path)
            }
        return self._columns

    async def _read_campaigns(self) -> list[Campaign]:
        await self._read_columns()
        fields = self._campaign_columns or []
        records = await self._api().campaigns(["name", "record_state", *fields])
        return [rows.campaign_of(record, fields) for record in records]

    def _by_ids(
        self, controller: str, ids: Sequence[int], columns: Sequence[str]
    ) -> AsyncIterator[dict[str, Any]]:
        return self._chunked(controller, "id", [str(i) for i in ids], columns)

    async def _chunked(
        self, controller: str, column: str, values: Sequence[str], select: Sequence[str], *extra: Filter
    ) -> AsyncIterator[dict[str, Any]]:
        for first in range(0, len(values), CHUNK):
            text = ",".join(rows.escape(v) for v in values[first : first + CHUNK])
            filters: list[Filter] = [*extra, (column, "eq", text)]
            async for record in self._api().read_all(
                controller, select=select, filters=filters, page_size=self._settings.page_size
            ):
                yield record

    def _members_with(self, status_ids: Iterable[int]) -> AsyncIterator[dict[str, Any]]:
        """Live memberships holding one of `status_ids` (statuses renamed or deleted since the cursor)."""
        values = [str(i) for i in sorted(status_ids)]
        return self._chunked(rows.MEMBERS, statuses.STATUS_ID, values, rows.MEMBER_COLUMNS)

    def _members_of(self, kind: Kind, ids: Sequence[int]) -> AsyncIterator[dict[str, Any]]:
        values = [str(i) for i in ids]
        kind_filter: Filter = ("party_or_lead_type", "eq", kind.class_name)
        return self._chunked(rows.MEMBERS, "party_or_lead_id", values, rows.MEMBER_COLUMNS, kind_filter)

    async def _gone(self, emails: Sequence[str]) -> list[str]:
        """The deleted records' emails that no live person or lead still has."""
        if not emails:
            return []
        present = {normal for normal in map(rows.normal_email, emails) if normal in self._refs}
        for kind in KINDS:
            async for record in self._chunked(kind.controller, kind.email, emails, ("id", kind.email)):
                present.add(rows.normal_email(str(record.get(kind.email) or "")))
        return sorted({e for e in emails if rows.normal_email(e) not in present})

    def _remember(self, kind: Kind, record: dict[str, Any]) -> None:
        email = rows.email_of(kind, record)
        if email is not None:
            self._forget(kind, record["id"])
            ref = Ref(kind, record["id"], int(record.get("lock_version") or 0))
            self._refs.setdefault(rows.normal_email(email), {})[(kind.name, ref.id)] = ref
            self._emails[(kind.name, ref.id)] = rows.normal_email(email)

    def _forget(self, kind: Kind, record_id: int) -> None:
        email = self._emails.pop((kind.name, record_id), None)
        refs = self._refs.get(email) if email is not None else None
        if email is not None and refs is not None:
            refs.pop((kind.name, record_id), None)
            if not refs:
                del self._refs[email]

    # -- writes --
    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if kind not in WRITES:
            reason = f"Workbooks is the CRM side: listsync does not {kind} there (it creates no CRM records)"
            return [Outcome(False, reason)] * len(ops)
        await self._resolve(op.email for op in ops if op.email)
        if kind == "record_activity":
            return await self._record_activity(ops)
        outcomes: list[Outcome | None] = [None] * len(ops)
        targets: list[tuple[int, Ref[Kind], dict[str, Value]]] = []
        for index, op in enumerate(ops):
            refs = self._targets(op)
            if isinstance(refs, str):
                outcomes[index] = Outcome(False, refs)
                continue
            for ref in refs:
                targets.append((index, ref, rows.op_fields(op, ref.kind, self._settings.undeliverable_field)))
        errors = await save(self._api, self._chunked, [(ref, fields) for _, ref, fields in targets])
        failures: dict[int, list[str]] = {}
        for (index, _, _), error in zip(targets, errors, strict=True):
            if error is not None:
                failures.setdefault(index, []).append(error)
        for index in range(len(ops)):
            if outcomes[index] is None:
                found = failures.get(index)
                outcomes[index] = Outcome(False, "; ".join(found)) if found else Outcome(True)
        return [outcome or Outcome(False, "not attempted") for outcome in outcomes]

    async def _record_activity(self, ops: Sequence[Op]) -> list[Outcome]:
        """Per-contact events become online activities; ops without an email are campaign totals."""
        outcomes: list[Outcome] = [Outcome(False, "not attempted")] * len(ops)
        for indexes, record in (
            ([i for i, op in enumerate(ops) if op.email], self._record_events),
            ([i for i, op in enumerate(ops) if not op.email], self._record_totals),
        ):
            if indexes:
                for index, outcome in zip(indexes, await record([ops[i] for i in indexes]), strict=True):
                    outcomes[index] = outcome
        return outcomes

    async def _record_events(self, ops: Sequence[Op]) -> list[Outcome]:
        return await activities.record(self._api, self._chunked, self._targets, self._known_campaigns, ops)

    async def _record_totals(self, ops: Sequence[Op]) -> list[Outcome]:
        return await campaign_totals.record_totals(self._api, self._chunked, self._known_campaigns, ops)

    def _targets(self, op: Op) -> list[Ref[Kind]] | str:
        if not op.email:
            return "the op names no email"
        refs = list(self._refs.get(rows.normal_email(op.email), {}).values())
        if not refs:
            return f"no person or sales lead in Workbooks has the email {op.email} (listsync creates none)"
        of_kind = [ref for ref in refs if ref.kind.name == op.record_kind]
        return of_kind or refs

    async def _resolve(self, emails: Iterable[str]) -> None:
        """Look up, by a filtered read, the records of emails the last snapshot did not show."""
        missing = sorted({rows.normal_email(e) for e in emails} - set(self._refs))
        if not missing:
            return
        last = self._settings.undeliverable_field
        for kind in KINDS:
            async for record in self._chunked(kind.controller, kind.email, missing, kind.essentials(last)):
                self._remember(kind, record)

    async def _known_campaigns(self) -> list[Campaign]:
        if self._campaigns is None:
            self._campaigns = await self._read_campaigns()
        return self._campaigns

    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        """Never called: `write` submits no jobs. Answers each op as not done, so nothing is assumed."""
        detail = "Workbooks writes are synchronous: there are no jobs"
        return JobStatus("unknown", True, tuple(Outcome(False, detail) for _ in ops), detail)

    async def flush(self) -> None:
        """Nothing to do: every write was committed by Workbooks before `write` returned."""

    async def aclose(self) -> None:
        client, http = self._client, self._http
        self._client = self._http = None
        try:
            if client is not None and client.session is not None:
                await client.logout()
        except (ListsyncError, httpx.HTTPError):
            pass  # the session times out on its own
        finally:
            if http is not None:
                await http.aclose()


def _version_of(tops: dict[str, dict[str, Any]]) -> str:
    parts = []
    for controller, top in tops.items():
        parts.append(f"{controller}:{top['total']}:{top.get('id')}:{top.get('lock_version')}")
        parts.append(str(top.get("updated_at")))
    return xxhash.xxh3_64_hexdigest("|".join(parts).encode())


__all__ = ["LEAD", "PERSON", "WRITES", "WorkbooksAdapter", "WorkbooksSettings"]
