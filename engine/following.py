"""The imports process: follow vendor jobs that an earlier apply submitted but did not see finish.

An apply polls its own jobs until they end or its deadline passes; a job still running then, or
one left behind by a crash, stays open in the state store with the ops it carried. This process
polls each open job once per run, records its state, and when it has ended records one row outcome
per op with the vendor's reason, so import faults are reported and searchable. It writes no base:
the next plan finds the rows the job did import already agreeing on both sides, and plans the
others again. A job open longer than `JOB_TIMEOUT` is marked `timed_out` and reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import msgspec

from engine.applying import JOB_TIMEOUT, describe_error, ended_outcomes
from engine.contract import Outcome
from engine.plans import Op
from engine.retrying import with_retries
from engine.session import Sync
from engine.store import JobRecord, OutcomeRow


@dataclass
class FollowReport:
    """What one run of the imports process saw: jobs by state, and the rows of the ended ones."""

    run_id: int
    jobs: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return {
            **{f"jobs.{k}": v for k, v in self.jobs.items()},
            **{f"rows.{k}": v for k, v in self.rows.items()},
        }


async def follow_jobs(sync: Sync, *, min_age: float = 0.0) -> FollowReport:
    """Poll once every open job of the rule set submitted at least `min_age` seconds ago (the service
    passes `service.job_wait`: a younger job may be one an apply running meanwhile still polls);
    record what ended."""
    store = sync.store
    report = FollowReport(await store.start_run(sync.name, "imports"))
    outcomes: list[OutcomeRow] = []
    try:
        for job in await store.open_jobs(sync.name):
            if store.now() - job.submitted_at >= min_age:
                outcomes += await _follow(sync, job, report, store.now())
        await store.record_outcomes(report.run_id, outcomes)
        await store.finish_run(report.run_id, "partial" if report.rows["rejected"] else "ok", report.counts())
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await store.finish_run(report.run_id, "failed", report.counts(), detail=describe_error(error))
        raise
    return report


async def _follow(sync: Sync, job: JobRecord, report: FollowReport, now: float) -> list[OutcomeRow]:
    ops = msgspec.msgpack.decode(job.payload, type=list[Op])
    if now - job.submitted_at > JOB_TIMEOUT:
        detail = f"not finished {JOB_TIMEOUT / 3600:g} h after it was submitted; its rows are planned again"
        await sync.store.update_job(job.id, "timed_out", True, detail)
        report.jobs["timed_out"] += 1
        return _rows(job, ops, [Outcome(False, f"job {job.vendor_job_id} timed out")] * len(ops), report)
    adapter = sync.adapter(job.side)
    status = await with_retries(lambda: adapter.poll(job.vendor_job_id, ops))
    await sync.store.update_job(job.id, status.state, status.terminal, status.detail)
    report.jobs[status.state if status.terminal else "running"] += 1
    if not status.terminal:
        return []
    return _rows(job, ops, ended_outcomes(job.vendor_job_id, status, len(ops)), report)


def _rows(
    job: JobRecord, ops: Sequence[Op], outcomes: Sequence[Outcome], report: FollowReport
) -> list[OutcomeRow]:
    rows: list[OutcomeRow] = []
    for op, outcome in zip(ops, outcomes, strict=False):
        key = op.key
        if outcome.ok:
            report.rows["done"] += 1
            rows.append((key, job.kind, "done", None))
        else:
            report.rows["rejected"] += 1
            report.reasons[outcome.reason or "rejected"] += 1
            rows.append((key, job.kind, "rejected", outcome.reason))
    return rows
