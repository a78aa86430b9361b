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
op kind it takes, and job polls; `tests/fuzz_adapters.py`), then a whole plan and apply through
the engine over both emulators, as `tests/test_workbooks_dotdigital_sync.py` wires them.

Running: the default run keeps each test to a few seconds. `LISTSYNC_FUZZ=long` (`bin/fuzz`) runs
forty times as many examples. Hypothesis keeps failing examples in `.hypothesis/` (ignored by git)
and replays them first; each bug found is pinned below with `@example` or a plain test.
"""

from __future__ import annotations

import asyncio
import copy
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import stamina
from hypothesis import event, example, given
from hypothesis import strategies as st

import engine.applying
from adapters.demos.workbooks_dotdigital import EMULATOR_SECRETS, emulator_rules
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_data import ActivityShares
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_state import WorkbooksState
from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.errors import ListsyncError, SafetyStop
from engine.planning import make_plan
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import Side
from engine.session import open_sync
from tests.fuzz_adapters import NOW, OPERATIONS, SECRETS, VENDORS, run, workbooks_state
from tests.fuzz_http import Answer, Interposer, victims
from tests.support import fuzz_settings


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
_REQUESTS: dict[tuple[str, str, bool], int] = {}  # how many requests an operation makes, unfuzzed


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
    with stamina.set_testing(True, attempts=2):  # adapters repeat a failed read: without waiting here
        if key not in _REQUESTS:
            interposer, result = asyncio.run(run(vendor, name, session, {}))
            assert not isinstance(result, ListsyncError), result
            _REQUESTS[key] = len(interposer.seen)
        interposer, result = asyncio.run(run(vendor, name, session, swapped, _REQUESTS[key]))
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
