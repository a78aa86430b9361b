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

from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from engine.applying import ApplyReport
from engine.commands import apply_with_progress, print_follow_report, print_report
from engine.contract import DemoSetup, OAuthTokens
from engine.following import FollowReport, follow_jobs
from engine.planning import make_plan
from engine.plans import Plan
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


@dataclass
class _Summary:
    """What each step of the demo did, for the table that ends it."""

    steps: list[tuple[str, ApplyReport | FollowReport]] = field(default_factory=list)

    def show(self, final: Plan, out: Console) -> None:
        table = Table(
            title="Summary",
            title_justify="left",
            caption="ops done, rejected and pending; records confirmed; calls to the CRM and the ESP",
            caption_justify="left",
            show_edge=False,
        )
        for heading in ("step", "done", "rejected", "pending", "confirmed", "CRM", "ESP"):
            table.add_column(heading, justify="left" if heading == "step" else "right", no_wrap=True)
        for step, report in self.steps:
            cells: list[int | None]
            if isinstance(report, FollowReport):  # rows of the jobs that ended; jobs still running
                cells = [report.rows["done"], report.rows["rejected"], report.jobs["running"], *[None] * 3]
            else:
                calls = Counter(report.calls)
                cells = [
                    *(sum(counts.values()) for counts in (report.done, report.rejected, report.pending)),
                    report.base_written,
                    calls["crm"],
                    calls["esp"],
                ]
            table.add_row(step, *("" if cell is None else f"{cell:,}" for cell in cells))
        out.print(table)
        rejected = Counter(side.upper() for side, _, _ in final.rejections)
        left = ", ".join(f"{count:,} {side} record(s)" for side, count in sorted(rejected.items()))
        outcome = "no changes" if not final.has_changes else f"{len(final.ops):,} op(s) still to do"
        out.print(f"Last plan: {outcome}" + (f"; rejected and left unchanged: {left}." if left else "."))


async def run_demo(kit: DemoKit, out: Console, err: Console, directory: Path | None) -> int:
    out.print(Rule(f"listsync demo: {kit.title}"))
    summary = _Summary()
    async with kit.setup(directory) as setup:
        loaded = load_rules(setup.rules)
        await _store_grants(loaded, setup.grants)
        out.print(f"Rules: {setup.rules}\n")
        summary.steps.append(
            ("1. initial sync", await _round(loaded, setup, "1. Initial sync: plan, then apply", out, err))
        )
        edits = await kit.change_both_sides(setup.rules.parent)
        out.print(Rule("2. Changes made on both sides since the sync"))
        for edit in edits:
            out.print(f"  - {edit}")
        out.print()
        for number, process in enumerate(PROCESSES):
            label = f"3{'abcd'[number]}."
            title = f"{label} The {process} process: {DESCRIPTIONS[process]}"
            report = await _round(loaded, setup, title, out, err, process=process)
            summary.steps.append((f"{label} {process}", report))
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
        out.print()
        summary.show(final, out)
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
) -> ApplyReport | FollowReport:
    out.print(Rule(title))
    async with open_sync(loaded, budgets=setup.budgets, extras=setup.extras) as sync:
        if process == "imports":
            followed = await follow_jobs(sync)
            print_follow_report(followed, out)
            out.print()
            return followed
        plan = await make_plan(sync, process=process)
        render(plan, out, limit=None if len(plan.ops) <= 2 * SHOWN else SHOWN)
        out.print()
        report = await apply_with_progress(sync, plan, err, override_safety=False)
    print_report(report, out)
    out.print()
    return report
