"""`listsync demo`: a whole sync, shown step by step, against data a demo kit prepares.

A kit (registered in the ``listsync.demos`` entry-point group by an adapter package) sets up both
sides and a rule file (vendor kits start their emulators in-process and route the sides to them),
and can then change both sides the way people do between syncs. The demo plans and applies the
initial sync, applies a round of edits from both sides, runs the four processes one by one as the
service would (each with its own plan), and finally shows that, once a person settles any conflict
it parked, planning again finds nothing left to do. An OAuth grant the kit's emulator issued is
stored where `listsync auth` stores one (the rule set side's row in the state store), so the adapter
signs in and refreshes as it does for real.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.rule import Rule

from engine.commands import apply_with_progress, print_follow_report, print_report
from engine.contract import DemoSetup, OAuthTokens
from engine.following import follow_jobs
from engine.planning import make_plan
from engine.processes import DESCRIPTIONS, PROCESSES
from engine.rendering import render
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import ProcessName, Side
from engine.session import open_sync
from engine.store import SideTokens, StateStore

SHOWN = 25


class DemoKit(Protocol):
    title: str

    def setup(self, directory: Path | None) -> AbstractAsyncContextManager[DemoSetup]:
        """Prepare both sides; yields the rule file to sync with and how to reach the sides."""
        ...

    async def change_both_sides(self, directory: Path) -> list[str]:
        """Edit both sides as people would between syncs; returns what was done."""
        ...

    async def settle_conflicts(self, directory: Path) -> list[str]:
        """Settle, as a person would, the conflicts `change_both_sides` made."""
        ...


async def run_demo(kit: DemoKit, out: Console, err: Console, directory: Path | None) -> int:
    out.print(Rule(f"listsync demo: {kit.title}"))
    async with kit.setup(directory) as setup:
        loaded = load_rules(setup.rules)
        await _store_grants(loaded, setup.grants)
        out.print(f"Rules: {setup.rules}\n")
        await _round(loaded, setup, "1. Initial sync: plan, then apply", out, err)
        edits = await kit.change_both_sides(setup.rules.parent)
        out.print(Rule("2. Changes made on both sides since the sync"))
        for edit in edits:
            out.print(f"  - {edit}")
        out.print()
        for number, process in enumerate(PROCESSES):
            title = f"3{'abcd'[number]}. The {process} process: {DESCRIPTIONS[process]}"
            await _round(loaded, setup, title, out, err, process=process)
        settled = await kit.settle_conflicts(setup.rules.parent)
        out.print(
            Rule(
                "4. Someone settles the conflict; planning once more" if settled else "4. Planning once more"
            )
        )
        for edit in settled:
            out.print(f"  - {edit}")
        out.print()
        async with open_sync(loaded, budgets=setup.budgets, extras=setup.extras) as sync:
            final = await make_plan(sync)
        render(final, out)
        out.print(f"\n{setup.explore or f'Explore it yourself: listsync plan {setup.rules}'}")
        return 0 if not final.has_changes else 1


async def _store_grants(loaded: LoadedRules, grants: dict[Side, OAuthTokens]) -> None:
    if not grants:
        return
    async with await StateStore.open(loaded.state_path) as store:
        for side, tokens in grants.items():
            adapter = (loaded.rules.crm if side == "crm" else loaded.rules.esp).adapter
            await SideTokens(store, loaded.rules.name, side, adapter).save(tokens)


async def _round(
    loaded: LoadedRules,
    setup: DemoSetup,
    title: str,
    out: Console,
    err: Console,
    *,
    process: ProcessName | None = None,
) -> None:
    out.print(Rule(title))
    async with open_sync(loaded, budgets=setup.budgets, extras=setup.extras) as sync:
        if process == "imports":
            print_follow_report(await follow_jobs(sync), out)
            out.print()
            return
        plan = await make_plan(sync, process=process)
        render(plan, out, limit=None if len(plan.ops) <= 2 * SHOWN else SHOWN)
        out.print()
        report = await apply_with_progress(sync, plan, err, override_safety=False)
    print_report(report, out)
    out.print()
