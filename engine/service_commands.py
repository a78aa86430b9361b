"""The service's subcommands: `run`, and `status`, `history`, `approve`, `discard` beside it.

`status` and `history` read the state stores, not the running service, so they work whether or
not it runs (and on another machine with a copy of the state). Both print JSON with `--json`.
Held-plan ids are per state file; `approve` and `discard` look for the id in the state files of
the rule files given, and refuse an id found in more than one.
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
from rich.console import Console

from engine.budgets import Budget, Budgets
from engine.errors import PermanentError
from engine.logs import setup_logging
from engine.processes import PROCESSES
from engine.rules_loading import LoadedRules, load_rules
from engine.session import SIDES, budget_for
from engine.store import HeldState, StateStore

ENDED_JOBS_SHOWN = 5  # `status`: the last jobs that ended, with what the vendor said of them


async def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from engine.observing import serve_observability
    from engine.service import Service

    setup_logging(args.log_format)
    service = Service(args.rules, stop_grace=args.stop_grace)
    service.load()
    ports = {w.loaded.rules.service.port for w in service.watched.values()} - {None}
    port = args.port or (min(p for p in ports if p is not None) if ports else None)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_signal, stop)
        if port:
            group.start_soon(serve_observability, service, args.host, port)
        await service.serve(stop)
        group.cancel_scope.cancel()
    return 0


async def _stop_on_signal(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stop.set()


def _when(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


async def status(args: argparse.Namespace, out: Console, err: Console) -> int:
    report = [await _status_of(load_rules(path)) for path in args.rules]
    if args.json:
        _print_json(report)
        return 0
    for entry in report:
        out.print(f"[bold]{entry['rule_set']}[/] ({entry['file']})")
        for process, last in entry["last_runs"].items():
            shown = (
                f"{last['outcome']} at {last['finished_at'] or last['started_at']}" if last else "never run"
            )
            out.print(f"  {process:<9} {shown}")
        jobs = entry["open_jobs"]
        out.print(
            f"  open import jobs: {len(jobs)}"
            + "".join(f"\n    {j['vendor_job_id']}: {j['state']}" for j in jobs[:10])
        )
        for job in entry["ended_jobs"]:
            detail = f": {job['detail']}" if job["detail"] else ""
            out.print(f"  ended {job['kind']} job {job['vendor_job_id']} {job['state']}{detail}")
        for held in entry["held_plans"]:
            out.print(
                f"  [yellow]held plan {held['id']}[/] ({held['process']}, {held['state']}, "
                f"{held['held_at']}): " + "; ".join(held["stops"])
            )
        for budget in entry["budgets"]:
            out.print(
                f"  budget {budget['account']}: {budget['remaining']:.0f} of "
                f"{budget['capacity']:.0f} calls free now"
                if budget["capacity"] is not None
                else f"  budget {budget['account']}: unlimited"
            )
    return 0


async def _status_of(loaded: LoadedRules) -> dict[str, Any]:
    name = loaded.rules.name
    async with await StateStore.open(loaded.state_path) as store:
        runs = await store.runs(name, limit=500)
        jobs = await store.open_jobs(name)
        ended = [job for job in await store.jobs(name, limit=ENDED_JOBS_SHOWN * 4) if job.terminal]
        held = await store.held_plans(name)
        levels = await store.budget_levels()
    last = {process: next((r for r in runs if r.process == process), None) for process in PROCESSES}
    return {
        "rule_set": name,
        "file": str(loaded.path),
        "last_runs": {p: _run_dict(r) if r else None for p, r in last.items()},
        "open_jobs": [
            {"id": j.id, "vendor_job_id": j.vendor_job_id, "kind": j.kind, "state": j.state, "polls": j.polls}
            for j in jobs
        ],
        # What the vendor said of the last jobs that ended (an import's counts, a failure's reason).
        "ended_jobs": [
            {
                "vendor_job_id": j.vendor_job_id,
                "kind": j.kind,
                "state": j.state,
                "ended_at": _when(j.updated_at),
                "detail": j.detail,
            }
            for j in ended[:ENDED_JOBS_SHOWN]
        ],
        "held_plans": [
            {
                "id": h.id,
                "process": h.process,
                "state": h.state,
                "held_at": _when(h.held_at),
                "stops": h.stops,
                "summary": h.summary,
            }
            for h in held
        ],
        "budgets": [_budget_dict(budget_for(Budgets(), loaded, side), levels) for side in SIDES],
    }


def _budget_dict(budget: Budget, levels: dict[str, tuple[float, float]]) -> dict[str, Any]:
    if budget.account in levels:
        budget.restore(*levels[budget.account])
    remaining = None if budget.capacity is None else max(0.0, budget.capacity - budget.level)
    return {"account": budget.account, "capacity": budget.capacity, "remaining": remaining}


def _run_dict(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "process": run.process,
        "outcome": run.outcome,
        "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at),
        "counts": run.counts,
        "detail": run.detail,
    }


async def history(args: argparse.Namespace, out: Console, err: Console) -> int:
    loaded = load_rules(args.rules)
    name = loaded.rules.name
    async with await StateStore.open(loaded.state_path) as store:
        if args.email:
            rows = await store.outcomes_for(args.email, name)
            entries: list[dict[str, Any]] = [
                {
                    "run_id": r.run_id,
                    "kind": r.kind,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "at": _when(r.at),
                }
                for r in rows[-args.limit :]
            ]
        else:
            entries = [_run_dict(r) for r in await store.runs(name, limit=args.limit)]
    if args.json:
        _print_json(entries)
        return 0
    if not entries:
        out.print("No history yet." if not args.email else f"Nothing recorded for {args.email}.")
    for entry in entries:
        if args.email:
            reason = f": {entry['reason']}" if entry["reason"] else ""
            out.print(
                f"  {entry['at']}  run {entry['run_id']:<6} {entry['kind']:<22} {entry['outcome']}{reason}"
            )
        else:
            counts = ", ".join(f"{k} {v}" for k, v in entry["counts"].items() if v) or "-"
            detail = f"  ({entry['detail']})" if entry["detail"] else ""
            out.print(
                f"  run {entry['id']:<6} {entry['started_at']}  {entry['process']:<9} "
                f"{entry['outcome']:<8} {counts}{detail}"
            )
    return 0


async def approve(args: argparse.Namespace, out: Console, err: Console) -> int:
    return await _decide(
        args, out, "approved", "the next run applies it if it still opts out and removes no more"
    )


async def discard(args: argparse.Namespace, out: Console, err: Console) -> int:
    return await _decide(args, out, "discarded", "the next run plans afresh")


async def _decide(args: argparse.Namespace, out: Console, state: HeldState, then: str) -> int:
    found: list[Path] = []
    for path in args.rules:
        loaded = load_rules(path)
        async with await StateStore.open(loaded.state_path) as store:
            if any(h.id == args.id for h in await store.held_plans(loaded.rules.name)):
                found.append(path)
    if len(found) != 1:
        where = ", ".join(map(str, found)) if found else "the state of " + ", ".join(map(str, args.rules))
        raise PermanentError(
            f"held plan {args.id} is in {where}; name exactly one rule file that holds it"
            if found
            else f"no held or approved plan {args.id} in {where}"
        )
    loaded = load_rules(found[0])
    async with await StateStore.open(loaded.state_path) as store:
        try:
            decided = await store.decide_plan(args.id, state, expected=("held",))
        except ValueError as error:
            raise PermanentError(str(error)) from None
    out.print(f"Plan {decided.id} of {decided.rule_set} ({decided.process}) {state}: {then}.")
    return 0


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


def add_parsers(sub: Any) -> None:
    """The service's subcommands on the `listsync` parser."""
    runner = sub.add_parser("run", help="run every process of the rule sets on their intervals, as a service")
    runner.add_argument("rules", nargs="+", type=Path)
    runner.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log lines (default text)"
    )
    runner.add_argument("--port", type=int, default=None, help="serve /healthz and /metrics on this port")
    runner.add_argument("--host", default="127.0.0.1", help="loopback address for --port (default 127.0.0.1)")
    runner.add_argument(
        "--stop-grace", type=float, default=30.0, help="seconds runs get to finish on SIGTERM (default 30)"
    )
    state = sub.add_parser("status", help="rule sets, last runs, open jobs, held plans and budgets")
    state.add_argument("rules", nargs="+", type=Path)
    state.add_argument("--json", action="store_true")
    past = sub.add_parser("history", help="past runs, or every recorded outcome for one email")
    past.add_argument("rules", type=Path)
    past.add_argument("--email", help="the row-level outcomes for this email address")
    past.add_argument("--limit", type=int, default=50)
    past.add_argument("--json", action="store_true")
    for name, text in (("approve", "let a held plan through"), ("discard", "drop a held plan")):
        decide = sub.add_parser(name, help=text)
        decide.add_argument("id", type=int)
        decide.add_argument("rules", nargs="+", type=Path)
