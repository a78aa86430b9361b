"""Fuzzing vendor answers: whatever Dotdigital or Workbooks sends back, listsync fails cleanly.

A vendor's answer is input listsync does not control: a proxy cuts it short, a gateway answers
with an HTML page, the API grows or loses a field, a number overflows. Every such answer must
surface as one of the engine's errors (`engine.errors`) whose message names the vendor, the call
and the reason, and never leaks a credential; never as a raw KeyError, TypeError, msgspec error or
other traceback. A plan or an apply that fails that way must leave the state store as it was: all
of it after a failed plan, and the base and the cursors after a failed apply (its run history, and
the vendor jobs it started, are rightly recorded).

How: each vendor's emulator answers every request over `httpx.MockTransport`, except one or two
chosen requests, whose answers are swapped for generated ones (`tests/fuzz_http.py`). The tests
drive each adapter's reads (snapshot, incremental snapshot, version, activity) and writes (every
op kind it takes, and job polls), then a whole plan and apply through the engine over both
emulators, as `tests/test_workbooks_dotdigital_sync.py` wires them.

Running: the default run keeps each test to a few seconds. `LISTSYNC_FUZZ=long` (`bin/fuzz`) runs
forty times as many examples. Hypothesis keeps failing examples in `.hypothesis/` (ignored by git)
and replays them first; each bug found is pinned below with `@example` or a plain test.
"""

from __future__ import annotations

import asyncio
import copy
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import msgspec
import pytest
import stamina
from hypothesis import event, example, given
from hypothesis import strategies as st

import engine.applying
from adapters.demos.workbooks_dotdigital import EMULATOR_SECRETS, emulator_rules
from adapters.dotdigital import emulator_data as dotdigital_data
from adapters.dotdigital.adapter import DotdigitalAdapter, DotdigitalSettings
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_data import ActivityShares
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks import emulator_data as workbooks_data
from adapters.workbooks.adapter import WorkbooksAdapter, WorkbooksSettings
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.applying import apply_plan
from engine.budgets import Budget, Budgets
from engine.contract import Adapter, AdapterContext, Outcome, Snapshot
from engine.errors import ListsyncError, SafetyStop
from engine.planning import make_plan
from engine.plans import Change, Op
from engine.records import Row
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import SecretRef, Side
from engine.session import open_sync
from tests.fuzz_http import Answer, Interposer, victims
from tests.support import fuzz_settings

DD_PASSWORD = Knobs().api_password
WB_PASSWORD = "secret"  # the emulator's session user's
SECRETS = (DD_PASSWORD, DEFAULT_API_KEY, WB_PASSWORD)
NOW = datetime.now(UTC)


def dotdigital_call(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


def workbooks_call(request: httpx.Request) -> str:
    return request.url.path.removeprefix("/").removesuffix(".api")


def assert_clean(error: ListsyncError, vendor: str, seen: list[httpx.Request]) -> None:
    """The error names the vendor and one of the calls made, says why, and holds no secret."""
    text = str(error)
    assert vendor.lower() in text.lower(), text
    name = dotdigital_call if vendor == "Dotdigital" else workbooks_call
    assert any(name(request) in text for request in seen), (text, [name(r) for r in seen])
    assert len(text) > len(vendor) + 20, text
    for secret in SECRETS:
        assert secret not in text, text


# -- each adapter on its own ---------------------------------------------------------------------------
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


def _write(kind: str, build: Callable[[Any], list[Op]]) -> Operation:
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


def _dd_job(kind: str) -> Operation:
    """Poll a job of `kind` (an import, or a deletion) that the real emulator accepted."""

    async def poll(adapter: Adapter, state: DotdigitalState, arm: Callable[[], None]) -> object:
        email, book = _dd_member(state)
        op = Op(kind, email=email, list=book)  # type: ignore[arg-type]
        [outcome] = await adapter.write(kind, [op])  # type: ignore[arg-type]
        assert outcome.job is not None, outcome
        arm()
        return await adapter.poll(outcome.job, [op])

    return poll


NEW = "new.person@example.com"
DOTDIGITAL: dict[str, Operation] = {
    "snapshot": _read(lambda adapter: adapter.snapshot(None)),
    "incremental snapshot": _read(lambda adapter: adapter.snapshot((NOW - timedelta(days=3)).isoformat())),
    "version": _read(lambda adapter: adapter.version()),
    "activity": _read(lambda adapter: adapter.activity(None, NOW - timedelta(days=90))),
    "create_list": _write(
        "create_list",
        lambda state: [Op("create_list", list="Fuzzed"), Op("create_list", list=_dd_member(state)[1])],
    ),
    "create_field": _write(
        "create_field",
        lambda state: [
            Op("create_field", field="FUZZED", field_type="numeric"),
            Op("create_field", field="FIRSTNAME", field_type="text"),
        ],
    ),
    "opt_out_esp": _write(
        "opt_out_esp",
        lambda state: [Op("opt_out_esp", email=NEW), Op("opt_out_esp", email=_dd_member(state)[0])],
    ),
    "remove_member": _write(
        "remove_member",
        lambda state: [Op("remove_member", email=_dd_member(state)[0], list=_dd_member(state)[1])],
    ),
    "upsert_contact": _write(
        "upsert_contact",
        lambda state: [
            Op("upsert_contact", email=NEW, changes={"FIRSTNAME": Change(None, "Jo")}),
            Op("upsert_contact", email=_dd_member(state)[0], changes={"opted_out": Change(True, False)}),
        ],
    ),
    "add_member": _write(
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
    "snapshot": _read(lambda adapter: adapter.snapshot(None)),
    "incremental snapshot": _read(lambda adapter: adapter.snapshot((NOW - timedelta(days=3)).isoformat())),
    "version": _read(lambda adapter: adapter.version()),
    "opt_out_crm": _write("opt_out_crm", _wb_ops("opt_out_crm", record_kind="person")),
    "update_crm": _write(
        "update_crm", _wb_ops("update_crm", changes={"person_first_name": Change("A", "B")})
    ),
    "mark_undeliverable_crm": _write("mark_undeliverable_crm", _wb_ops("mark_undeliverable_crm")),
    "record_activity": _write(
        "record_activity",
        _wb_ops(
            "record_activity", changes={"type": Change(None, "open"), "at": Change(None, NOW.isoformat())}
        ),
    ),
}


@dataclass
class Vendor:
    name: str
    side: Side
    state: Callable[[], Any]
    app: Callable[[Any], Any]
    adapter: Callable[[AdapterContext, bool], Adapter]
    operations: dict[str, Operation]


def _dotdigital(context: AdapterContext, session: bool) -> Adapter:
    return DotdigitalAdapter(
        DotdigitalSettings(api_user=Knobs().api_user, password=SecretRef(env="P")), context
    )


def _workbooks(context: AdapterContext, session: bool) -> Adapter:
    if session:
        settings = WorkbooksSettings(username="api.user@example.com", password=SecretRef(env="P"))
    else:
        settings = WorkbooksSettings(api_key=SecretRef(env="K"))
    return WorkbooksAdapter(settings, context)


VENDORS = {
    "Dotdigital": Vendor("Dotdigital", "esp", dotdigital_state, dotdigital_app, _dotdigital, DOTDIGITAL),
    "Workbooks": Vendor("Workbooks", "crm", workbooks_state, workbooks_app, _workbooks, WORKBOOKS),
}
OPERATIONS = [(vendor, name) for vendor, found in VENDORS.items() for name in found.operations]
_REQUESTS: dict[tuple[str, str, bool], int] = {}  # how many requests an operation makes, unfuzzed


async def _run(
    vendor: Vendor, operation: str, session: bool, swapped: dict[int, Answer], requests: int = 1000
) -> tuple[Interposer, object]:
    """Run one operation against a fresh emulator; its result, or the engine error it raised."""
    state = vendor.state()
    interposer = Interposer(httpx.ASGITransport(app=vendor.app(state)))
    secrets = {"P": DD_PASSWORD if vendor.name == "Dotdigital" else WB_PASSWORD, "K": DEFAULT_API_KEY}

    def http(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, transport=interposer.transport())

    context = AdapterContext(
        vendor.side, Path("."), Budget("fuzz", None), lambda ref: secrets[ref.env or ""], http=http
    )
    adapter = vendor.adapter(context, session)
    try:
        return interposer, await vendor.operations[operation](
            adapter, state, lambda: interposer.arm(swapped, requests)
        )
    except ListsyncError as error:
        return interposer, error
    finally:
        interposer.victims = {}  # closing (a Workbooks logout) is not part of the test
        await adapter.aclose()


def _answer(body: bytes) -> dict[int, Answer]:
    return {0: Answer("json", body=body)}


@fuzz_settings(150)
@given(operation=st.sampled_from(OPERATIONS), session=st.booleans(), swapped=victims)
# Found by fuzzing: a redirect to a URL httpx cannot parse escaped as httpx.InvalidURL.
@example(
    ("Dotdigital", "snapshot"), False, {0: Answer("redirect", 301, headers=(("location", "javascript:x"),))}
)
@example(
    ("Workbooks", "version"), False, {0: Answer("redirect", 302, headers=(("location", "http://[::1"),))}
)
# Found by fuzzing: rows without an integer id (or with an odd lock_version) raised KeyError and
# TypeError in the adapter.
@example(("Workbooks", "snapshot"), False, _answer(b'{"success": true, "data": [{"name": "x"}], "total": 1}'))
@example(
    ("Workbooks", "version"),
    True,
    {1: Answer("json", body=b'{"data": [{"id": 1, "lock_version": []}], "total": 1}')},
)
# Found by fuzzing: messages that did not name the call.
@example(("Workbooks", "snapshot"), False, {0: Answer("empty", body=b"")})
@example(("Dotdigital", "version"), False, _answer(b'{"id": 417, "properties": []}'))
@example(("Dotdigital", "poll an import"), False, {1: Answer("bytes", body=b"\x80")})
def test_an_adapter_fed_odd_answers_fails_with_an_engine_error_naming_vendor_and_call(
    operation: tuple[str, str], session: bool, swapped: dict[int, Answer]
) -> None:
    vendor, name = VENDORS[operation[0]], operation[1]
    key = (vendor.name, name, session)
    if key not in _REQUESTS:
        interposer, result = asyncio.run(_run(vendor, name, session, {}))
        assert not isinstance(result, ListsyncError), result
        _REQUESTS[key] = len(interposer.seen)
    interposer, result = asyncio.run(_run(vendor, name, session, swapped, _REQUESTS[key]))
    event(f"{vendor.name}: {type(result).__name__}")
    if isinstance(result, ListsyncError):
        assert_clean(result, vendor.name, interposer.seen)
    elif isinstance(result, list):
        for outcome in result:
            assert all(secret not in (outcome.reason or "") for secret in SECRETS)


# -- a whole plan and apply through the engine ------------------------------------------------------------
KEPT_BY_A_FAILED_APPLY = ("base", "base_meta", "fingerprint_sets", "list_counts", "cursors")


@dataclass
class World:
    """Both emulators after a first sync and a round of changes on both sides, and the state then."""

    rules: LoadedRules
    crm: WorkbooksState
    esp: DotdigitalState
    state: bytes
    requests: dict[Side, int]


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall()) for name in names}


@contextmanager
def quick_engine() -> Iterator[None]:
    """Retries without waiting, and polls of vendor jobs 10 ms apart."""
    with (
        stamina.set_testing(True, attempts=2),
        mock.patch.object(engine.applying, "POLL_FIRST", 0.01),
        mock.patch.dict(os.environ, EMULATOR_SECRETS),
    ):
        yield


async def _sync(
    world: World,
    crm: WorkbooksState,
    esp: DotdigitalState,
    fuzzed: Side | None,
    swapped: dict[int, Answer],
    requests: int = 1000,
) -> tuple[dict[Side, Interposer], str | None, ListsyncError | None]:
    """Plan and apply over both emulators, `swapped` answers on the `fuzzed` side; where it failed."""
    interposers: dict[Side, Interposer] = {
        "crm": Interposer(httpx.ASGITransport(app=workbooks_app(crm))),
        "esp": Interposer(httpx.ASGITransport(app=dotdigital_app(esp))),
    }
    if fuzzed is not None:
        interposers[fuzzed].arm(swapped, requests)
    extras = {f"{side}_transport": interposer.transport() for side, interposer in interposers.items()}
    async with open_sync(world.rules, budgets=Budgets(enabled=False), extras=extras) as sync:
        try:
            plan = await make_plan(sync)
        except ListsyncError as error:
            return interposers, "plan", error
        try:
            await apply_plan(sync, plan)
        except ListsyncError as error:
            return interposers, "apply", error
    return interposers, None, None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("fuzz-sync")
    with quick_engine():
        rules = load_rules(emulator_rules(root))
        crm = workbooks_state()
        esp = DotdigitalState(Knobs(rate_scheme="none", import_polls=1), seed=5, started_at=NOW)
        first = World(rules, crm, esp, b"", {})
        _, failed, error = asyncio.run(_sync(first, crm, esp, None, {}))
        assert failed is None, error
        person = next(r for r in crm.live("crm/people") if not r.get("no_email_soliciting"))
        crm.update("crm/people", person["id"], {"no_email_soliciting": True, "person_first_name": "Renamed"})
        contact = next(c for c in esp.contacts.values() if c.status == "Subscribed")
        esp.unsubscribe(contact.email)
        book = max(esp.address_books.values(), key=lambda b: len(b.members))
        sent = esp.add_campaign("Fuzzed news", book_ids=[book.id])
        esp.generate_activity(sent.id, ActivityShares(hard_bounce=0.1, open=0.6, click=0.5, unsubscribe=0.0))
        saved = rules.state_path.read_bytes()
        counting = World(rules, copy.deepcopy(crm), copy.deepcopy(esp), saved, {})
        interposers, failed, error = asyncio.run(_sync(counting, counting.crm, counting.esp, None, {}))
        assert failed is None, error
    requests: dict[Side, int] = {side: len(i.seen) for side, i in interposers.items()}
    return World(rules, crm, esp, saved, requests)


def _restore(world: World) -> dict[str, list[tuple[Any, ...]]]:
    path = world.rules.state_path
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(world.state)
    return tables(path)


@fuzz_settings(40)
@given(side=st.sampled_from(["crm", "esp"]), swapped=victims)
def test_a_sync_fed_odd_answers_fails_cleanly_and_keeps_the_state(
    world: World, side: Side, swapped: dict[int, Answer]
) -> None:
    before = _restore(world)
    crm, esp = copy.deepcopy(world.crm), copy.deepcopy(world.esp)
    with quick_engine():
        interposers, failed, error = asyncio.run(_sync(world, crm, esp, side, swapped, world.requests[side]))
    after = tables(world.rules.state_path)
    event(f"{side}: {type(error).__name__} in {failed}" if error is not None else f"{side}: synced")
    if error is None:
        return
    if not isinstance(error, SafetyStop):  # the engine's own judgement of odd data, not a vendor error
        vendor = "Workbooks" if side == "crm" else "Dotdigital"
        assert_clean(error, vendor, interposers[side].seen)
    if failed == "plan":
        assert after == before
    else:
        assert {t: after[t] for t in KEPT_BY_A_FAILED_APPLY} == {t: before[t] for t in KEPT_BY_A_FAILED_APPLY}
