"""What each `listsync` subcommand does, once its arguments are parsed."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from engine.applying import ApplyReport, apply_plan
from engine.errors import RulesError
from engine.following import FollowReport, follow_jobs
from engine.planning import check_fresh, make_plan
from engine.plans import Plan, decode_plan, encode_plan
from engine.rendering import as_json, render
from engine.rules_loading import load_rules
from engine.session import Sync, open_command_sync

DEMOS = "listsync.demos"


async def validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    invalid = 0
    for path in args.rules:
        try:
            load_rules(path)
        except RulesError as error:
            invalid += 1
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            continue
        out.print(f"{path}: valid")
    return 2 if invalid else 0


async def plan(args: argparse.Namespace, out: Console, err: Console) -> int:
    loaded = load_rules(args.rules)
    async with open_command_sync(loaded) as sync:
        if args.process == "imports":
            return await _open_jobs(sync, out)
        made = await make_plan(sync, incremental=args.incremental, process=args.process)
    if args.out is not None:
        args.out.write_bytes(encode_plan(made))
        err.print(f"Plan saved to {args.out}; apply it with `listsync apply {args.rules} --plan {args.out}`.")
    if args.json:
        sys.stdout.buffer.write(as_json(made, kinds=args.kind, lists=args.lists) + b"\n")
        sys.stdout.flush()
    else:
        render(made, out, kinds=args.kind, lists=args.lists, limit=None if args.all else 200)
    if args.detailed_exitcode:
        return 2 if made.has_changes else 0
    return 0


async def apply(args: argparse.Namespace, out: Console, err: Console) -> int:
    loaded = load_rules(args.rules)
    async with open_command_sync(loaded) as sync:
        if args.process == "imports":
            print_follow_report(await follow_jobs(sync), out)
            return 0
        if args.plan_file is not None:
            made = decode_plan(args.plan_file.read_bytes())
            await check_fresh(sync, made)
        else:
            made = await make_plan(sync, incremental=args.incremental, process=args.process)
        if not args.quiet:
            render(made, out)
        report = await apply_with_progress(sync, made, err, override_safety=args.override_safety)
    print_report(report, out)
    return 0


async def apply_with_progress(
    sync: Sync, made: Plan, err: Console, *, override_safety: bool = False
) -> ApplyReport:
    """Apply, with a progress bar on a terminal when the plan is long enough to want one."""
    total = len(made.actionable)
    if total < 500 or not err.is_terminal:
        return await apply_plan(sync, made, override_safety=override_safety)
    columns = (TextColumn("Applying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("apply", total=total)
        return await apply_plan(
            sync, made, override_safety=override_safety, progress=lambda n: bar.advance(task, n)
        )


def print_report(report: ApplyReport, out: Console) -> None:
    done = sum(report.done.values())
    rejected = sum(report.rejected.values())
    pending = sum(report.pending.values())
    out.print(
        f"[bold]Applied:[/] {done:,} done, {rejected:,} rejected, {pending:,} pending; "
        f"{report.base_written:,} records confirmed; calls: "
        + ", ".join(f"{side.upper()} {n:,}" for side, n in report.calls.items())
        + f" (run {report.run_id})."
    )
    for reason, count in report.reasons.most_common(10):
        out.print(f"  rejected {count:,}: {reason}", style="yellow")


async def _open_jobs(sync: Sync, out: Console) -> int:
    """The imports process makes no plan: what it would follow are the open jobs."""
    jobs = await sync.store.open_jobs(sync.name)
    if not jobs:
        out.print("[green]No open import jobs.[/] The imports process has nothing to follow.")
    for job in jobs:
        out.print(
            f"  ~ {job.kind:<16} {job.side.upper()} job {job.vendor_job_id}: {job.state}, {job.polls} poll(s)"
        )
    return 0


def print_follow_report(report: FollowReport, out: Console) -> None:
    jobs = ", ".join(f"{count:,} {state}" for state, count in report.jobs.items()) or "no open jobs"
    out.print(
        f"[bold]Imports followed:[/] {jobs}; rows of ended jobs: {report.rows['done']:,} done, "
        f"{report.rows['rejected']:,} rejected (run {report.run_id})."
    )
    for reason, count in report.reasons.most_common(10):
        out.print(f"  rejected {count:,}: {reason}", style="yellow")


async def emulate(args: argparse.Namespace, out: Console, err: Console) -> int:
    from engine.emulating import serve

    await serve(
        args.name,
        args.host,
        args.port,
        args.seed,
        out,
        faults=args.faults,
        contacts=args.contacts,
        unlimited=args.unlimited,
        state_file=args.state_file,
    )
    return 0


async def demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    found = {ep.name: ep for ep in entry_points(group=DEMOS)}
    if args.esp not in found:
        err.print(f"No demo named {args.esp!r}; available: {', '.join(sorted(found)) or 'none'}.")
        return 1
    from engine.demo import DemoKit, run_demo

    kit = cast(DemoKit, found[args.esp].load())
    return await run_demo(kit, out, err, args.dir)
