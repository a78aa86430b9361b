"""With 30% of calls failing on both emulators, a whole Workbooks -> Dotdigital sync converges to the
same final state as without faults, and never spends more of the Dotdigital budget than it has.

Each world is the generated CRM of `tests.test_workbooks_dotdigital_sync.World` synced into an empty
Dotdigital account, then changed on both sides the same way (opt-outs each way, a hard bounce, a
rename, someone taken off a campaign) and synced again. While the faulted world applies, its
emulators fail 30% of calls in every way the fault layer knows (timeouts shortened to keep the test
fast: the client's deadline is a quarter second) and Dotdigital fails or stalls some imports; its
runs are repeated, plan then apply, until a plan is empty. Then the two worlds' emulator dumps must
be equal but for ids, timestamps and the import jobs it took. Faults are on for the whole run, its
snapshot reads included (the adapters repeat each failed page on its own).

The Dotdigital budget is checked on compressed time, as in `tests/test_sync_budget.py`: the rules
give the account CALLS calls a second and the emulator, its clock 3,600 times fast, enforces them per
hour; every request that reached the emulator, faulted or not, is stamped and counted per second.
stamina's backoffs are off (its testing mode, with the engine's number of attempts): with 30% of
calls failing they would be most of the test's time, and without them retries press the budget
harder. Which calls are retried, and Retry-After, are the clients' tests' business.
`LISTSYNC_FAULT_SEEDS=1,2,3,...` runs more seeds (the default run has one).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from starlette.applications import Starlette

import engine.applying
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.dumps import comparable
from adapters.emulation.faults import Faults
from adapters.workbooks.emulator import create_app as workbooks_app
from engine.applying import apply_plan
from engine.budgets import Budget, Budgets
from engine.errors import ListsyncError
from engine.http import BudgetedTransport
from engine.planning import make_plan
from engine.retrying import ATTEMPTS
from engine.rules_loading import load_rules
from engine.ruleset import RuleSet
from engine.session import open_sync
from tests.support import Stamped, most_in_a_window
from tests.test_workbooks_dotdigital_sync import World

SEEDS = [int(s) for s in os.environ.get("LISTSYNC_FAULT_SEEDS", "7").split(",")]
SHARES = {"500": 0.07, "503": 0.05, "429": 0.04, "timeout": 0.03, "drop": 0.06, "malformed": 0.05}
SHARES |= {"retry_after": 0.01}
JOB_SHARES = {"job_fail": 0.1, "job_stall": 0.2}
DEADLINE = 0.25  # seconds the client waits for an answer; injected timeouts hold calls longer
CALLS = 60  # the Dotdigital budget: calls per emulated hour, one real second
ROUNDS = 25


class Emulated:
    """One world's two emulators as apps, and what the sync's transports saw."""

    def __init__(self, world: World, seed: int | None) -> None:
        self.seed = seed
        self.crm = workbooks_app(world.crm, faults=Faults(seed=seed or 0, timeout_after=DEADLINE * 2))
        self.esp = dotdigital_app(world.esp, faults=Faults(seed=(seed or 0) + 1, timeout_after=DEADLINE * 2))
        self.stamped = Stamped(_within(self.esp))
        self.extras: dict[str, Any] = {"crm_transport": _within(self.crm), "esp_transport": self.stamped}
        self.errors: list[str] = []
        self.exposed, self.since = {"crm": 0, "esp": 0}, {"crm": 0, "esp": 0}

    async def converge(self, rules: RuleSet, budgets: Budgets) -> int:
        """Plan and apply until a plan is empty; the number of applies it took."""
        for applies in range(ROUNDS):
            try:
                self.faulty(True)
                async with open_sync(rules, budgets=budgets, extras=self.extras) as sync:
                    plan = await make_plan(sync)
                    if not plan.ops:
                        return applies
                    await apply_plan(sync, plan)
            except ListsyncError as failed:  # a run that gave up; the next one starts over
                self.errors.append(f"{type(failed).__name__}: {failed}")
            finally:
                self.faulty(False)
        raise AssertionError(f"no empty plan after {ROUNDS} runs; errors: {self.errors}")

    def faulty(self, on: bool) -> None:
        """Fail SHARES of the calls (and JOB_SHARES of Dotdigital's imports) from now on, or none;
        `exposed` counts the calls made while faults were on."""
        if self.seed is None:
            return
        for side, app, extra in (("crm", self.crm, {}), ("esp", self.esp, JOB_SHARES)):
            control = app.state.control
            if control.faults.error_500:  # faults were on: count the calls since they were turned on
                self.exposed[side] += control.faults.calls - self.since[side]
            self.since[side] = control.faults.calls
            control.update({name: share * on for name, share in {**SHARES, **extra}.items()})

    def apps(self) -> list[tuple[str, Starlette]]:
        return [("crm", self.crm), ("esp", self.esp)]

    async def dumps(self) -> dict[str, Any]:
        found = {}
        for side, app in self.apps():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as http:
                found[side] = (await http.get("/_emulator/state")).json()
        found["esp"].pop("imports"), found["esp"].pop("deletions")
        return comparable(found)


def _within(app: Any) -> httpx.AsyncBaseTransport:
    """ASGITransport with the deadline a network client has (ASGITransport ignores httpx's timeouts)."""
    return BudgetedTransport(httpx.ASGITransport(app=app), Budget("deadline", None), deadline=DEADLINE)


def compressed(world: World) -> RuleSet:
    """The world's rules with the Dotdigital budget at CALLS a second, and its emulator enforcing
    CALLS an hour on a clock 3,600 times fast. The opt-out safety valve is opened: a first sync cut
    short leaves a small base, and the CRM's opt-outs still to send then exceed 5% of it (they are
    new contacts created unsubscribed, not synced contacts opting out, but the valve counts them)."""
    path = world.rules.path
    edits = {
        "calls = 2000": f"calls = {CALLS}",
        'period = "1h"': 'period = "1s"',
        "burst = 20": "burst = 6",
        "max_opt_out_share = 0.05": "max_opt_out_share = 1.0",
    }
    text = path.read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    knobs = Knobs(rate_scheme="flat", flat_calls_per_hour=CALLS)
    world.esp = DotdigitalState(
        knobs, seed=5, clock=lambda: time.monotonic() * 3600, started_at=datetime.now(UTC)
    )
    return load_rules(path)


def change_both_sides(world: World) -> None:
    """The same edits in either world: people picked by email, never by id or order of creation."""
    people = {str(r["main_location[email]"]).lower() for r in world.crm.live("crm/people")}
    synced = sorted(
        c.email.lower()
        for c in world.esp.contacts.values()
        if c.status == "Subscribed" and c.email.lower() in people
    )
    crm_opt_out, esp_unsubscribe, bounced, renamed = synced[:4]
    world.crm.update("crm/people", world.person(crm_opt_out)["id"], {"no_email_soliciting": True})
    world.crm.update("crm/people", world.person(renamed)["id"], {"person_first_name": "Renamed"})
    world.esp.unsubscribe(esp_unsubscribe)
    contact = world.esp.contact_by_email(bounced)
    assert contact is not None
    world.esp.suppress(contact, "HardBounced")
    membership = min(
        world.crm.live("crm/campaign_membership"),
        key=lambda m: (str(m["marketing_campaign_id"]), str(m.get("member_name"))),
    )
    world.crm.delete("crm/campaign_membership", membership["id"])


async def both_converge(
    clean: Emulated, faulted: Emulated, clean_world: World, faulted_world: World, rules: RuleSet
) -> None:
    """Both worlds synced to an empty plan, compared, changed alike, synced and compared again."""
    for step in ("first sync", "after changes on both sides"):
        assert await clean.converge(clean_world.rules, Budgets(enabled=False)) == 1, clean.errors
        await faulted.converge(rules, Budgets())
        assert await faulted.dumps() == await clean.dumps(), step
        if step == "first sync":
            change_both_sides(clean_world)
            change_both_sides(faulted_world)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", SEEDS)
async def test_a_sync_with_30_percent_of_calls_failing_ends_as_one_without_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(engine.applying, "JOB_WAIT", 0.5)  # a stalled import is left to the next run
    for name in ("clean", "faulted"):
        (tmp_path / name).mkdir()
    clean_world = World(tmp_path / "clean", monkeypatch)
    faulted_world = World(tmp_path / "faulted", monkeypatch)
    rules = compressed(faulted_world)
    clean, faulted = Emulated(clean_world, None), Emulated(faulted_world, seed)
    with stamina.set_testing(True, attempts=ATTEMPTS):
        await both_converge(clean, faulted, clean_world, faulted_world, rules)
    injected = {side: app.state.control.report()["injected"] for side, app in faulted.apps()}
    print(f"faults injected: {injected} in {faulted.exposed} calls; runs that gave up: {faulted.errors}")
    assert sum(injected["esp"].values()) > 0.1 * faulted.exposed["esp"] and faulted.exposed["esp"] > 50
    assert most_in_a_window(faulted.stamped.stamps, 1.0) <= CALLS


@pytest.mark.asyncio
async def test_a_plan_read_through_faults_is_the_plan_read_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot is hundreds of page reads; each is repeated on its own after a fault, so the plan
    neither fails nor misses a row that a failed page held."""
    world = World(tmp_path, monkeypatch)
    emulated = Emulated(world, seed=3)
    with stamina.set_testing(True, attempts=ATTEMPTS):
        async with open_sync(world.rules, budgets=Budgets(enabled=False), extras=emulated.extras) as sync:
            clean = await make_plan(sync)
            emulated.faulty(True)
            faulted = [await make_plan(sync) for _ in range(3)]
            emulated.faulty(False)
    injected = emulated.crm.state.control.report()["injected"]
    assert sum(injected.values()) > 10, injected
    assert clean.ops and all(plan.ops == clean.ops for plan in faulted)
