"""The Workbooks emulator's in-memory database: records, users, sessions and batched writes.

Kept apart from the HTTP layer so tests can seed, inspect and edit it directly (as a CRM user
would), and so every behaviour of `shared/reference/workbooks-api.md` §2-§4 has one owner. The
query engine lives in `emulator_queries`, the write vocabulary in `emulator_writes` and the record
types in `emulator_types`; their public names are re-exported here so existing imports keep working.
Choices where the reference is UNSURE:
- `updated_at` has one-second resolution.
- Deleting a person, lead or campaign also deletes (tombstones) its memberships.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.workbooks.emulator_queries import (
    Filter,
    Predicate,
    Query,
    Record,
    compile_match,
    matching,
    page,
    selector,
)
from adapters.workbooks.emulator_types import (
    DEFAULT_STATUSES,
    LEAD,
    PERSON,
    FieldSpec,
    TypeSpec,
    WorkbooksError,
    coerce,
    default_types,
)
from adapters.workbooks.emulator_writes import (
    EMAIL,
    MAX_BATCH,
    ROLLED_BACK,
    STALE,
    ObjectError,
    WriteObject,
    batch_body,
    check_fields,
)

__all__ = [
    "DEFAULT_API_KEY",
    "EMAIL",
    "MAX_BATCH",
    "ROLLED_BACK",
    "STALE",
    "Filter",
    "Predicate",
    "Query",
    "Record",
    "Session",
    "User",
    "WorkbooksError",
    "WorkbooksState",
    "WriteObject",
    "compile_match",
]

DEFAULT_API_KEY = "12345-12345-12345-12345-12345-12345-12345-12345"


@dataclass
class User:
    login_name: str
    password: str
    person_name: str
    user_id: int
    login_disabled: bool = False


@dataclass
class Session:
    session_id: str
    authenticity_token: str
    user: User
    last_used: float


class WorkbooksState:
    """One Workbooks database. `records[controller][id]` holds every record, tombstones included."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        undeliverable_field: str = "email_address_undeliverable",
        max_page_size: int = 1000,
        session_timeout: float = 8 * 3600,
    ) -> None:
        self.clock = clock
        self.random = random.Random(seed)
        self.undeliverable_field = undeliverable_field
        self.max_page_size = max_page_size
        self.session_timeout = session_timeout
        self.types: dict[str, TypeSpec] = default_types(undeliverable_field)
        self.records: dict[str, dict[int, Record]] = {controller: {} for controller in self.types}
        self.api_keys: set[str] = {DEFAULT_API_KEY}
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.database = {"name": "Emulated Database", "id": 7, "created_at": "Mon Jan 06 09:00:00 UTC 2020"}
        self._next_id = 1000
        self._undo: list[tuple[str, int, Record | None]] | None = None
        self._changes = 0  # counts stores, rollbacks and new fields: a read's cached rows go stale
        self._last_read: tuple[tuple[object, ...], list[Record]] | None = None
        self.add_user("api.user@example.com", "secret", "Api User")

    # -- inspection and direct edits (a CRM user working in the web UI) --
    def now(self) -> datetime:
        return datetime.fromtimestamp(int(self.clock()), UTC)

    def add_user(self, login_name: str, password: str, person_name: str) -> User:
        user = User(login_name, password, person_name, user_id=len(self.users) + 1)
        self.users[login_name] = user
        return user

    def add_custom_field(self, controller: str, name: str, datatype: str, title: str = "") -> FieldSpec:
        spec = FieldSpec(name, datatype, title)
        self.types[controller].fields[name] = spec
        self._changes += 1
        return spec

    def get(self, controller: str, record_id: int) -> Record:
        return self.records[controller][record_id]

    def live(self, controller: str) -> list[Record]:
        return [r for r in self.records[controller].values() if not r["is_deleted"]]

    def statuses_of(self, campaign_id: int) -> dict[str, int]:
        """The campaign's live member statuses by name (by `status` for an unnamed one) -> id."""
        rows = self.live("crm/campaign_membership_status")
        return {r["name"] or r["status"]: r["id"] for r in rows if r["marketing_campaign_id"] == campaign_id}

    def status_name(self, status_id: int | None) -> str:
        """A member status's name (its `status` when unnamed); empty for an id no live status has."""
        record = self.records["crm/campaign_membership_status"].get(status_id or 0)
        return "" if record is None or record["is_deleted"] else str(record["name"] or record["status"])

    def insert(
        self, controller: str, values: Record, *, at: datetime | None = None, user: str = "System"
    ) -> Record:
        """Create a record without validation (seeding, or edits made outside the API)."""
        spec = self.types[controller]
        typed = {name: coerce(spec.fields[name], value) for name, value in values.items()}
        record = self._new_record(spec, typed, user, "Workbooks Desktop", at or self.now())
        self._derive(spec, record)
        self._store(spec.controller, record)
        self._after_create(spec, record, user)
        return record

    def update(self, controller: str, record_id: int, values: Record, *, user: str = "System") -> Record:
        spec = self.types[controller]
        record = {**self.get(controller, record_id)}
        record.update({name: coerce(spec.fields[name], value) for name, value in values.items()})
        self._derive(spec, record)
        self._touch(record, user)
        self._store(controller, record)
        return record

    def delete(self, controller: str, record_id: int, *, user: str = "System") -> None:
        self._delete(self.types[controller], self.get(controller, record_id), user)

    # -- authentication --
    def login(self, *, username: str = "", password: str = "", api_key: str = "") -> Session:
        if api_key:
            self.check_api_key(api_key)
            user = next(iter(self.users.values()))
        else:
            found = self.users.get(username)
            if found is None or not secrets.compare_digest(found.password, password):
                raise WorkbooksError(401, "unrecognised_name_or_password", "Unrecognised name or password")
            if found.login_disabled:
                raise WorkbooksError(401, "login_disabled", "Login is disabled for this user")
            user = found
        session = Session(secrets.token_hex(16), secrets.token_hex(20), user, self.clock())
        self.sessions[session.session_id] = session
        return session

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise WorkbooksError(401, "no_session_found", "No session found: please log in")
        if self.clock() - session.last_used > self.session_timeout:
            del self.sessions[session_id]
            raise WorkbooksError(401, "session_expired", "The session has expired: please log in again")
        session.last_used = self.clock()
        return session

    def check_api_key(self, api_key: str) -> None:
        if api_key not in self.api_keys:
            raise WorkbooksError(401, "unrecognised_api_key", "The API key is not recognised")

    # -- reads --
    def describe_types(self, class_names: Sequence[str] = ()) -> list[dict[str, Any]]:
        specs = self.types.values()
        return [s.describe() for s in specs if not class_names or s.class_name in class_names]

    def spec(self, controller: str) -> TypeSpec:
        if controller not in self.types:
            raise WorkbooksError(404, "not_found", f"No such controller: {controller}")
        return self.types[controller]

    def read(self, controller: str, query: Query) -> dict[str, Any]:
        """One page of a read. The matching rows are kept until the next read of other rows or the next
        change, so paging through N rows filters and sorts them once, not once a page."""
        spec = self.spec(controller)
        key = (controller, self._changes, self.now().date(), repr((query.filters, query.match, query.sort)))
        if self._last_read is None or self._last_read[0] != key:
            rows = matching(spec, self.records[controller].values(), query, now=self.now)
            self._last_read = (key, rows)
        return page(spec, self._last_read[1], query, max_page_size=self.max_page_size)

    # -- writes --
    def write(
        self, controller: str, objects: Sequence[WriteObject], *, working_set: Sequence[Filter], match: str,
        per_object: bool, user: str = "Api User",
    ) -> dict[str, Any]:  # fmt: skip
        spec = self.spec(controller)
        if len(objects) > MAX_BATCH:
            raise WorkbooksError(406, "too_many_objects", f"At most {MAX_BATCH} objects per request")
        if not working_set:
            raise WorkbooksError(
                406, "working_set_filter_required", "A working-set filter (_ff[]) is required"
            )
        in_set = selector(spec, working_set, match, self.now)
        results: list[Record | ObjectError] = []
        self._undo, first_id = [], self._next_id
        try:
            for obj in objects:
                mark, next_id = len(self._undo), self._next_id
                try:
                    results.append(self._apply(spec, obj, in_set, user))
                except ObjectError as exc:
                    self._rollback(mark)
                    self._next_id = next_id
                    results.append(exc)
            ok = not any(isinstance(r, ObjectError) for r in results)
            if not ok and not per_object:
                self._rollback(0)
                self._next_id = first_id
        finally:
            self._undo = None
        return batch_body(spec, results, ok=ok, per_object=per_object)

    def _apply(self, spec: TypeSpec, obj: WriteObject, in_set: Predicate, user: str) -> Record:
        if obj.method == "POST":
            if obj.id != 0:
                raise ObjectError({"id": ["must be 0 to create a record"]})
            record = self._new_record(
                spec, self._validate(spec, obj.fields, creating=True), user, "API", self.now()
            )
            self._derive(spec, record)
            self._store(spec.controller, record)
            self._after_create(spec, record, user)
            return dict(record)
        current = self.records[spec.controller].get(obj.id)
        if obj.method not in ("PUT", "DELETE"):
            raise ObjectError({"__method": [f"{obj.method!r} is not POST, PUT or DELETE"]})
        if current is None or current["is_deleted"]:
            raise ObjectError({"id": [f"{obj.id} was not found"]})
        if not in_set(current):
            raise ObjectError({"id": [f"{obj.id} is not in the working set of this request"]})
        if obj.lock_version != current["lock_version"]:
            stale = {
                "id": obj.id,
                "lock_version": obj.lock_version,
                "current_lock_version": current["lock_version"],
            }
            raise ObjectError({"lock_version": [STALE]}, stale=stale)
        if obj.method == "DELETE":
            self._delete(spec, current, user)
            return {k: current[k] for k in ("id", "lock_version", "type", "is_deleted", "updated_at")}
        values = self._validate(spec, obj.fields, creating=False)
        record = {**current, **values}
        self._derive(spec, record)
        self._touch(record, user)
        self._store(spec.controller, record)
        changed = {k: v for k, v in record.items() if current.get(k) != v}
        return {
            "id": record["id"],
            "lock_version": record["lock_version"],
            "type": spec.class_name,
            **changed,
        }

    def _validate(self, spec: TypeSpec, raw: dict[str, str | None], *, creating: bool) -> Record:
        values, errors = check_fields(spec, raw, creating=creating)
        if spec.controller in ("crm/campaign_membership", "crm/online_activities") and not errors:
            self._check_links(spec, values, errors)
        if errors:
            raise ObjectError(errors)
        return values

    def _check_links(self, spec: TypeSpec, values: Record, errors: dict[str, list[str]]) -> None:
        campaign = self.records["crm/campaigns"].get(values.get("marketing_campaign_id") or 0)
        if "marketing_campaign_id" in values and (campaign is None or campaign["is_deleted"]):
            errors["marketing_campaign_id"] = ["does not refer to a campaign"]
        if "party_or_lead_id" in values:
            kind = values.get("party_or_lead_type") or PERSON
            table = self.records["crm/people" if kind == PERSON else "crm/sales_leads"]
            party = table.get(values["party_or_lead_id"] or 0)
            if party is None or party["is_deleted"]:
                errors["party_or_lead_id"] = [f"does not refer to a {kind}"]
        status_id = values.get("campaign_membership_status_id")
        if (
            status_id is not None
            and campaign is not None
            and status_id not in self.statuses_of(campaign["id"]).values()
        ):
            errors["campaign_membership_status_id"] = ["is not a status of this campaign"]

    # -- storage --
    def _new_record(self, spec: TypeSpec, values: Record, user: str, through: str, at: datetime) -> Record:
        self._next_id += 1
        record: Record = {name: fs.default for name, fs in spec.fields.items()}
        record |= {"id": self._next_id, "lock_version": 0, "type": spec.class_name, "is_deleted": False}
        record |= {"object_ref": f"{spec.prefix}-{self._next_id}", "created_through": through}
        record |= {"created_at": at, "updated_at": at, "created_by": user, "updated_by": user}
        return record | values

    def _touch(self, record: Record, user: str) -> None:
        record.update(lock_version=record["lock_version"] + 1, updated_at=self.now(), updated_by=user)

    def _store(self, controller: str, record: Record) -> None:
        self._changes += 1
        if self._undo is not None:
            old = self.records[controller].get(record["id"])
            self._undo.append((controller, record["id"], old))
        self.records[controller][record["id"]] = record

    def _rollback(self, mark: int) -> None:
        assert self._undo is not None
        self._changes += 1
        while len(self._undo) > mark:
            controller, record_id, old = self._undo.pop()
            if old is None:
                del self.records[controller][record_id]
            else:
                self.records[controller][record_id] = old

    def _derive(self, spec: TypeSpec, record: Record) -> None:
        if spec.controller == "crm/people":
            record["name"] = " ".join(filter(None, (record["person_first_name"], record["person_last_name"])))
        elif spec.controller == "crm/sales_leads":
            parts = (
                record["person_lead_party[person_first_name]"],
                record["person_lead_party[person_last_name]"],
            )
            record["person_lead_party[name]"] = " ".join(filter(None, parts))
            record["name"] = record["person_lead_party[name]"] or record["org_lead_party[name]"]
        elif spec.controller == "crm/campaign_membership":
            statuses = self.statuses_of(record["marketing_campaign_id"])
            record["campaign_membership_status_id"] = record["campaign_membership_status_id"] or statuses.get(
                "Potential"
            )
            table = "crm/people" if record["party_or_lead_type"] != LEAD else "crm/sales_leads"
            record["member_name"] = self.records[table].get(record["party_or_lead_id"], {}).get("name")

    def _after_create(self, spec: TypeSpec, record: Record, user: str) -> None:
        if spec.controller == "crm/campaigns":
            status_spec = self.types["crm/campaign_membership_status"]
            for status, name in DEFAULT_STATUSES:
                values = {"marketing_campaign_id": record["id"], "status": status, "name": name}
                row = self._new_record(
                    status_spec, values, user, record["created_through"], record["created_at"]
                )
                self._store(status_spec.controller, row)

    def _delete(self, spec: TypeSpec, record: Record, user: str) -> None:
        tombstone = {**record, "is_deleted": True}
        self._touch(tombstone, user)
        self._store(spec.controller, tombstone)
        members = self.types["crm/campaign_membership"]
        for member in self.live(members.controller):
            linked = spec.controller == "crm/campaigns" and member["marketing_campaign_id"] == record["id"]
            linked |= (
                member["party_or_lead_id"] == record["id"] and member["party_or_lead_type"] == spec.class_name
            )
            if linked:
                self._delete(members, member, user)
