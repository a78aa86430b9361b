"""One run of one process of one rule set, as the service makes it: plan, hold or apply, report.

The CLI's `apply` stops at a safety threshold and tells the person at the terminal; a service has
nobody there, so a held plan is kept in the state store (shown by `listsync status`) and the run ends
as ``held``. `listsync approve ID` lets a later run go through: it re-plans (the sides have moved on
since, so the kept plan itself would be stale) and applies with the threshold overridden if the new
plan removes and opts out no more than the approved one did, per kind; otherwise it holds the new
plan for a new decision. `listsync discard ID` drops a held plan; the next run holds again if the
sides still call for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.applying import apply_plan, describe_error
from engine.following import follow_jobs
from engine.logs import log_event
from engine.planning import make_plan
from engine.plans import Plan, encode_plan
from engine.ruleset import ProcessName, duration_seconds
from engine.session import Sync
from engine.store import HeldPlan, RunOutcome

# The op kinds a safety threshold counts; an approval covers up to the held plan's count of each.
GUARDED = ("opt_out_esp", "opt_out_crm", "remove_member")


@dataclass
class RunResult:
    """What a run did, for the log, the metrics and the service's own bookkeeping."""

    run_id: int
    outcome: RunOutcome
    ops: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows
    calls: dict[str, int] = field(default_factory=dict)
    held: int | None = None  # the held plan's id
    detail: str | None = None


async def run_process(sync: Sync, process: ProcessName, *, incremental: bool) -> RunResult:
    if process == "imports":
        followed = await follow_jobs(sync, min_age=duration_seconds(sync.rules.service.job_wait))
        outcome: RunOutcome = "partial" if followed.rows["rejected"] else "ok"
        return RunResult(
            followed.run_id, outcome, dict(followed.jobs), dict(followed.reasons), sync.calls_used()
        )
    try:
        plan = await make_plan(sync, incremental=incremental, process=process)
    except Exception as error:  # recorded, so `listsync history` shows the failed run too
        run_id = await sync.store.start_run(sync.name, process)
        await sync.store.finish_run(run_id, "failed", {}, detail=describe_error(error))
        raise
    override = False
    if plan.safety_stops:
        approved = await _approval_for(sync, process, plan)
        if approved is None:
            return await _hold(sync, process, plan)
        await sync.store.decide_plan(approved.id, "applied", expected=("approved",))
        override = True
    wait = duration_seconds(sync.rules.service.job_wait)
    if plan.ops:  # an apply can take minutes (imports): say it began, not only when it ends
        log_event("run applying", rule_set=sync.name, process=process, ops=plan.summary())
    report = await apply_plan(sync, plan, override_safety=override, job_wait=wait)
    outcome = "ok" if not report.rejected and not report.pending else "partial"
    return RunResult(report.run_id, outcome, plan.summary(), dict(report.reasons), report.calls)


async def _approval_for(sync: Sync, process: str, plan: Plan) -> HeldPlan | None:
    for held in await sync.store.held_plans(sync.name):
        if held.process == process and held.state == "approved" and covers(held.summary, plan.summary()):
            return held
    return None


def covers(approved: Mapping[str, int], planned: Mapping[str, int]) -> bool:
    """Whether an approval of a plan with `approved` op counts lets a plan with `planned` through."""
    return all(planned.get(kind, 0) <= approved.get(kind, 0) for kind in GUARDED)


async def _hold(sync: Sync, process: str, plan: Plan) -> RunResult:
    store = sync.store
    summary = plan.summary()
    held = await store.hold_plan(sync.name, process, plan.safety_stops, summary, encode_plan(plan))
    run_id = await store.start_run(sync.name, process)
    detail = f"held as plan {held}: " + "; ".join(plan.safety_stops)
    await store.finish_run(run_id, "held", summary, detail=detail)
    return RunResult(run_id, "held", summary, calls=sync.calls_used(), held=held, detail=detail)
