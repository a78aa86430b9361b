"""What the response fuzz tests drive: each adapter's reads and writes over a fresh emulator.

`tests/test_fuzz_responses.py` runs every operation here with some of the emulator's answers swapped
for generated ones (`tests/fuzz_http.py`). The emulators hold a handful of records, so an operation
makes a few dozen requests at most and an example takes milliseconds. An operation calls `arm` when
its fuzzed part starts: set-up calls before it (a write whose job is then polled) get real answers.
This module holds the machinery (`Vendor`, `run`) and the Dotdigital and Workbooks operations;
`tests/fuzz_esp_adapters.py` adds Constant Contact's and Mailchimp's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adapters.dotdigital import emulator_data as dotdigital_data
from adapters.dotdigital.adapter import DotdigitalAdapter, DotdigitalSettings
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks import emulator_data as workbooks_data
from adapters.workbooks.adapter import WorkbooksAdapter, WorkbooksSettings
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext, Outcome, Snapshot
from engine.errors import ListsyncError
from engine.plans import Change, Op, OpKind
from engine.records import Row
from engine.ruleset import SecretRef, Side
from tests.fuzz_http import Answer, Interposer

DD_PASSWORD = Knobs().api_password
WB_PASSWORD = "secret"  # the emulator's session user's
NOW = datetime.now(UTC)


# An operation gets the adapter, the emulator's state and `arm`, which it calls when the fuzzed part
# starts (after any set-up calls whose answers must be the real ones).
Operation = Callable[[Any, Any, Callable[[], None]], Awaitable[object]]


def _read(call: Callable[[Any], Awaitable[object]]) -> Operation:
    async def read(adapter: Any, state: Any, arm: Callable[[], None]) -> object:
        arm()
        result = await call(adapter)
        if isinstance(result, Snapshot):
            for payload in result.payloads:  # every payload decodes into a row, as the engine will ask
                assert isinstance(result.decode(payload), Row)
        return result

    return read


def read_operations(*, activity: bool = True) -> dict[str, Operation]:
    """The reads every adapter has: snapshots (full, and since three days ago), version, activity."""
    reads: dict[str, Operation] = {
        "snapshot": _read(lambda adapter: adapter.snapshot(None)),
        "incremental snapshot": _read(
            lambda adapter: adapter.snapshot((NOW - timedelta(days=3)).isoformat())
        ),
        "version": _read(lambda adapter: adapter.version()),
    }
    if activity:
        reads["activity"] = _read(lambda adapter: adapter.activity(None, NOW - timedelta(days=90)))
    return reads


def write_operation(kind: str, build: Callable[[Any], list[Op]]) -> Operation:
    """Write the ops `build` makes from the emulator's state, in one call."""

    async def write(adapter: Adapter, state: Any, arm: Callable[[], None]) -> object:
        ops = build(state)
        arm()
        outcomes = await adapter.write(kind, ops)  # type: ignore[arg-type]
        assert len(outcomes) == len(ops) and all(isinstance(o, Outcome) for o in outcomes)
        return outcomes

    return write


def dotdigital_state() -> DotdigitalState:
    state = DotdigitalState(Knobs(rate_scheme="none", import_polls=0), seed=3, started_at=NOW)
    dotdigital_data.generate(state, seed=3, contacts=12, address_books=2, campaigns=1)
    return state


def _dd_member(state: DotdigitalState) -> tuple[str, str]:
    book = next(b for b in state.address_books.values() if b.members)
    return state.contacts[next(iter(book.members))].email.lower(), book.name


def job_operation(kind: OpKind, build: Callable[[Any], Op]) -> Operation:
    """Poll the job of a `kind` write (of the op `build` makes) that the real emulator accepted."""

    async def poll(adapter: Adapter, state: Any, arm: Callable[[], None]) -> object:
        ops = [build(state)]
        [outcome] = await adapter.write(kind, ops)
        assert outcome.job is not None, outcome
        arm()
        return await adapter.poll(outcome.job, ops)

    return poll


def _dd_job(kind: OpKind) -> Operation:
    """Poll a job of `kind` (an import, or a deletion) of a book's member."""
    return job_operation(kind, lambda state: Op(kind, email=_dd_member(state)[0], list=_dd_member(state)[1]))


NEW = "new.person@example.com"
DOTDIGITAL: dict[str, Operation] = {
    **read_operations(),
    "create_list": write_operation(
        "create_list",
        lambda state: [Op("create_list", list="Fuzzed"), Op("create_list", list=_dd_member(state)[1])],
    ),
    "create_field": write_operation(
        "create_field",
        lambda state: [
            Op("create_field", field="FUZZED", field_type="numeric"),
            Op("create_field", field="FIRSTNAME", field_type="text"),
        ],
    ),
    "opt_out_esp": write_operation(
        "opt_out_esp",
        lambda state: [Op("opt_out_esp", email=NEW), Op("opt_out_esp", email=_dd_member(state)[0])],
    ),
    "remove_member": write_operation(
        "remove_member",
        lambda state: [Op("remove_member", email=_dd_member(state)[0], list=_dd_member(state)[1])],
    ),
    "upsert_contact": write_operation(
        "upsert_contact",
        lambda state: [
            Op("upsert_contact", email=NEW, changes={"FIRSTNAME": Change(None, "Jo")}),
            Op("upsert_contact", email=_dd_member(state)[0], changes={"opted_out": Change(True, False)}),
        ],
    ),
    "add_member": write_operation(
        "add_member", lambda state: [Op("add_member", email=NEW, list=_dd_member(state)[1])]
    ),
    "poll an import": _dd_job("add_member"),
    "poll a deletion": _dd_job("remove_member"),
}


def workbooks_state() -> WorkbooksState:
    state = WorkbooksState(seed=4)
    workbooks_data.generate(state, seed=4, people=10, leads=4, campaigns=1, opted_out_share=0.2)
    return state


def _wb_email(state: WorkbooksState) -> str:
    for record in state.live("crm/people"):
        email = str(record.get("main_location[email]") or "")
        if "@" in email[1:]:
            return email.strip().lower()
    raise LookupError("no person with an email")


def _wb_ops(kind: str, **fields: Any) -> Callable[[WorkbooksState], list[Op]]:
    def build(state: WorkbooksState) -> list[Op]:
        ops = [Op(kind, email=_wb_email(state), **fields), Op(kind, email="nobody@example.com", **fields)]  # type: ignore[arg-type]
        if kind != "record_activity":
            return ops
        campaign = str(next(iter(state.live("crm/campaigns")))["id"])
        totals = Op(kind, list=campaign, changes={"cf_marketing_campaign_email_opens": Change(None, 3)})  # type: ignore[arg-type]
        return [*(msgspec.structs.replace(op, list=campaign) for op in ops), totals]

    return build


WORKBOOKS: dict[str, Operation] = {
    **read_operations(activity=False),
    "opt_out_crm": write_operation("opt_out_crm", _wb_ops("opt_out_crm", record_kind="person")),
    "update_crm": write_operation(
        "update_crm", _wb_ops("update_crm", changes={"person_first_name": Change("A", "B")})
    ),
    "mark_undeliverable_crm": write_operation("mark_undeliverable_crm", _wb_ops("mark_undeliverable_crm")),
    "record_activity": write_operation(
        "record_activity",
        _wb_ops(
            "record_activity", changes={"type": Change(None, "open"), "at": Change(None, NOW.isoformat())}
        ),
    ),
}


@dataclass
class Vendor:
    """One vendor's emulator and adapter, and the operations to drive. `adapter` gets the context,
    the test's `session` flag (a variant of how it signs in) and the emulator's state, and answers
    the adapter and the secrets it was given, which no error may show."""

    name: str
    side: Side
    state: Callable[[], Any]
    app: Callable[[Any], Any]
    adapter: Callable[[AdapterContext, bool, Any], tuple[Adapter, tuple[str, ...]]]
    operations: dict[str, Operation]


def _dotdigital(context: AdapterContext, session: bool, state: Any) -> tuple[Adapter, tuple[str, ...]]:
    settings = DotdigitalSettings(api_user=Knobs().api_user, password=SecretRef(env="P"))
    return DotdigitalAdapter(settings, with_secrets(context, P=DD_PASSWORD)), (DD_PASSWORD,)


def _workbooks(context: AdapterContext, session: bool, state: Any) -> tuple[Adapter, tuple[str, ...]]:
    if session:
        settings = WorkbooksSettings(username="api.user@example.com", password=SecretRef(env="P"))
    else:
        settings = WorkbooksSettings(api_key=SecretRef(env="K"))
    context = with_secrets(context, P=WB_PASSWORD, K=DEFAULT_API_KEY)
    return WorkbooksAdapter(settings, context), (WB_PASSWORD, DEFAULT_API_KEY)


def with_secrets(context: AdapterContext, **values: str) -> AdapterContext:
    """`context` whose secret references (by environment variable name) resolve to `values`."""
    return dataclasses.replace(context, secret=lambda ref: values[ref.env or ""])


VENDORS = {
    "Dotdigital": Vendor("Dotdigital", "esp", dotdigital_state, dotdigital_app, _dotdigital, DOTDIGITAL),
    "Workbooks": Vendor("Workbooks", "crm", workbooks_state, workbooks_app, _workbooks, WORKBOOKS),
}


@dataclass
class Ran:
    """What one operation did: the requests seen, its result or engine error, the secrets it held."""

    interposer: Interposer
    result: object
    secrets: tuple[str, ...]


async def run(
    vendor: Vendor, operation: str, session: bool, swapped: dict[int, Answer], requests: int = 1000
) -> Ran:
    """Run one operation against a fresh emulator; its result, or the engine error it raised."""
    state = vendor.state()
    interposer = Interposer(httpx.ASGITransport(app=vendor.app(state)))

    def http(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, transport=interposer.transport())

    def unset(ref: SecretRef) -> str:
        raise LookupError(ref)

    context = AdapterContext(vendor.side, Path("."), Budget("fuzz", None), unset, http=http)
    adapter, secrets = vendor.adapter(context, session, state)
    try:
        result = await vendor.operations[operation](adapter, state, lambda: interposer.arm(swapped, requests))
    except ListsyncError as error:
        result = error
    finally:
        interposer.victims = {}  # closing (a Workbooks logout) is not part of the test
        await adapter.aclose()
    return Ran(interposer, result, secrets)
