"""Applying a plan: ops in order, in batches, under the account budget, retried when transient.

Order: lists and fields, opt-outs, removals, upserts and memberships, CRM write-backs. A rejected op
is recorded with its reason and the rest goes on. A write the vendor finishes later is stored as a
job and polled to a terminal state, or for `JOB_WAIT` (the service: `service.job_wait`) and then left
to the imports process. Only when both adapters have made their writes durable is the base written:
the plan's target for a contact whose every op was confirmed; for a contact with a rejected or
unfinished op, the target but for what those ops were to change (`diffing.partly_confirmed`), so
the next plan sees what was confirmed as agreed and plans the rest again. A contact the plan
makes on the ESP opted out is not made there at all while its opt-out is unconfirmed, so that it
never exists there subscribed. A run that fails, and a crash anywhere before that commit, leave the
base as it was, and the next plan finds the sides agreeing where the writes went through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import msgspec

from engine.activity_planning import store_activity_state
from engine.batches import batch_size, batches
from engine.budgets import lane, lane_of_op
from engine.contract import Adapter, JobStatus, Outcome, PartialWrite
from engine.diffing import partly_confirmed
from engine.errors import PermanentError, SafetyStop, TransientError
from engine.planning import cursor_streams
from engine.plans import NEW_CONTACT, REPORT_ONLY, Change, Op, OpKind, Plan
from engine.processes import CONSENT
from engine.reconciling import WRITTEN
from engine.records import Record
from engine.retrying import with_retries
from engine.ruleset import RecordKind, RuleSet, Side
from engine.session import SIDES, Sync
from engine.simulating import CRM_OPS
from engine.store import OutcomeRow, RunOutcome

# An apply waits this long for its jobs, then leaves them open for the imports process
# (`engine.following`), which gives up on a job open for JOB_TIMEOUT since it was submitted.
JOB_WAIT = 900.0
JOB_TIMEOUT = 6 * 3600.0
POLL_FIRST, POLL_MAX = 1.0, 30.0
WAITS_FOR_OPT_OUT = "not made on the ESP until its opt-out there is confirmed, so never subscribed"
NOT_WRITTEN = "not written: "  # an op the retries ran out on before the vendor answered it
# A contact whose ops the vendor refused in this many applies since it was last confirmed no longer
# holds the record cursors: it is tried again when either side's record changes, and at whole reads.
REFUSALS_HOLD = 3


@dataclass
class ApplyReport:
    """What an apply did: ops done, rejected (with reasons) and left pending, per kind."""

    run_id: int
    done: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    pending: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    base_written: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            **{f"done.{k}": v for k, v in self.done.items()},
            **{f"rejected.{k}": v for k, v in self.rejected.items()},
            **{f"pending.{k}": v for k, v in self.pending.items()},
            "base_written": self.base_written,
        }


@dataclass
class _Progress:
    failed: set[str] = field(default_factory=set)
    # Of `failed`: contacts the vendor refused an op of (`REFUSALS_HOLD`), and the keys that hold the
    # record cursors whatever came before (ops pending, not answered, of consent, of lists or fields).
    refused: set[str] = field(default_factory=set)
    holding: set[str] = field(default_factory=set)
    # Per contact, its ops that were rejected or left pending.
    unconfirmed: dict[str, list[Op]] = field(default_factory=dict)
    written: dict[tuple[str, Side], int | None] = field(default_factory=dict)
    outcomes: list[OutcomeRow] = field(default_factory=list)
    job_wait: float = JOB_WAIT
    # Contacts the plan makes on the ESP (their upsert's reason is NEW_CONTACT).
    creating: frozenset[str] = frozenset()

    def keep_unconfirmed(self, op: Op) -> None:
        """Keep a contact's op that was not confirmed, for its base; an event says nothing of it."""
        if op.email is not None and op.kind != "record_activity":
            self.unconfirmed.setdefault(op.email, []).append(op)

    def must_wait(self, op: Op) -> bool:
        """Whether `op` would make (or fill) on the ESP a contact whose opt-out there was not
        confirmed: opt-outs run first, and without its opt-out the contact would exist subscribed."""
        return (
            op.email in self.creating
            and op.kind in ("upsert_contact", "add_member")
            and any(other.kind == "opt_out_esp" for other in self.unconfirmed.get(op.email, ()))
        )


def side_of(kind: str) -> Side:
    return "crm" if kind in CRM_OPS else "esp"


async def apply_plan(
    sync: Sync,
    plan: Plan,
    *,
    override_safety: bool = False,
    progress: Callable[[int], None] | None = None,
    job_wait: float | None = None,
) -> ApplyReport:
    """Execute `plan` against both sides and record what the vendors confirmed.

    The record cursors of the plan's process (`engine.planning.records_stream`) advance only when
    every op of its part was confirmed, so the next incremental read sees the rest again. Rows
    rejected as they were read (malformed or shared emails) do not hold them: such a row comes back
    in a delta when someone edits it, and every whole read (`service.full_read_every`) reads it
    again. The activity state is kept after any apply that ran to its end, since activities are
    written once per key however often they are replayed."""
    if plan.safety_stops and not override_safety:
        raise SafetyStop(plan.safety_stops)
    store = sync.store
    report = ApplyReport(await store.start_run(sync.name, plan.process or "sync"))
    creating = frozenset(
        op.email for op in plan.ops if op.kind == "upsert_contact" and op.reason == NEW_CONTACT and op.email
    )
    state = _Progress(job_wait=JOB_WAIT if job_wait is None else job_wait, creating=creating)
    try:
        actionable = [op for op in plan.ops if op.kind not in REPORT_ONLY]
        sizes = {
            side: batch_size(
                sync.rules.esp.limits.batch_size if side == "esp" else sync.rules.crm.limits.batch_size,
                sync.capabilities(side).max_batch,
            )
            for side in ("crm", "esp")
        }
        for batch in batches(actionable, lambda kind: sizes[side_of(kind)]):
            await _run_batch(sync, side_of(batch[0].kind), batch, state, report)
            if progress is not None:
                progress(len(batch))
        await sync.esp.flush()
        await sync.crm.flush()
        confirmed = await _commit(sync, plan, state)
        report.base_written = len(confirmed)
        if not await _holding_cursors(sync, state, confirmed):
            for stream in cursor_streams(plan.process):
                for side in SIDES:
                    if side in plan.cursors:
                        await store.set_cursor(sync.name, side, stream, plan.cursors[side])
        if plan.activity is not None:
            await store_activity_state(sync, plan.activity, state.failed)
        report.calls = sync.calls_used()
        await store.record_outcomes(report.run_id, state.outcomes)
        outcome: RunOutcome = "ok" if not report.rejected and not report.pending else "partial"
        await store.finish_run(report.run_id, outcome, report.counts())
    except BaseException as error:
        with anyio.CancelScope(shield=True):
            await store.finish_run(report.run_id, "failed", report.counts(), detail=describe_error(error))
        raise
    return report


async def _run_batch(
    sync: Sync, side: Side, batch: Sequence[Op], state: _Progress, report: ApplyReport
) -> None:
    waiting = [op for op in batch if state.must_wait(op)]
    if waiting:
        _record(side, waiting, [Outcome(False, WAITS_FOR_OPT_OUT)] * len(waiting), state, report)
        batch = [op for op in batch if not state.must_wait(op)]
        if not batch:
            return
    adapter = sync.adapter(side)
    kind = batch[0].kind
    wire = [_for_side(op, sync.rules) for op in batch] if side == "crm" else list(batch)
    with lane(lane_of_op(kind)):  # opt-outs jump the account budget's queue
        outcomes = await _write(adapter, kind, wire)
        outcomes = await _settle_jobs(sync, side, adapter, wire, outcomes, state.job_wait)
    _record(side, batch, outcomes, state, report)


async def _write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> list[Outcome]:
    """`adapter.write`, repeated after transient failures; after a `PartialWrite`, for the ops the
    vendor has not taken yet only. When the retries run out with some ops taken, the others are
    rejected (planned again next run) so that the jobs already submitted are still followed."""
    found: list[Outcome | None] = [None] * len(ops)

    async def attempt() -> None:
        todo = [index for index, outcome in enumerate(found) if outcome is None]
        try:
            answered = list(await adapter.write(kind, [ops[index] for index in todo]))
        except PartialWrite as partial:
            for index, outcome in zip(todo, partial.outcomes, strict=True):
                found[index] = outcome
            raise
        if len(answered) != len(todo):
            raise PermanentError(
                f"adapter {adapter.name} answered {len(answered)} outcomes for {len(todo)} ops"
            )
        for index, outcome in zip(todo, answered, strict=True):
            found[index] = outcome

    try:
        await with_retries(attempt)
    except TransientError as lost:
        if all(outcome is None for outcome in found):
            raise
        return [outcome or Outcome(False, f"{NOT_WRITTEN}{lost}") for outcome in found]
    return [outcome for outcome in found if outcome is not None]  # every op answered


def _record(
    side: Side, ops: Sequence[Op], outcomes: Sequence[Outcome], state: _Progress, report: ApplyReport
) -> None:
    for op, outcome in zip(ops, outcomes, strict=True):
        key, kind = op.key, op.kind
        if outcome.job is not None:
            report.pending[kind] += 1
            state.failed.add(key)
            state.holding.add(key)
            state.outcomes.append((key, kind, "pending", outcome.reason))
        elif outcome.ok:
            report.done[kind] += 1
            if op.email is not None:
                state.written[(op.email, side)] = outcome.fingerprint
            state.outcomes.append((key, kind, "done", None))
        else:
            report.rejected[kind] += 1
            report.reasons[outcome.reason or "rejected"] += 1
            if kind != "record_activity" or op.email is None:  # an event says nothing of the base
                state.failed.add(key)
                (state.refused if _refusal(op, outcome) else state.holding).add(key)
            state.outcomes.append((key, kind, "rejected", outcome.reason))
        if outcome.job is not None or not outcome.ok:
            state.keep_unconfirmed(op)


def _refusal(op: Op, outcome: Outcome) -> bool:
    """Whether a rejected op is a contact's op the vendor refused (its job's failure included),
    rather than one it never answered, one the engine held back, or an opt-out, which is always
    tried again at once."""
    reason = outcome.reason or ""
    engine_made = reason == WAITS_FOR_OPT_OUT or reason.startswith(NOT_WRITTEN)
    return op.email is not None and op.kind not in CONSENT and not engine_made


async def _holding_cursors(sync: Sync, state: _Progress, confirmed: set[str]) -> bool:
    """Whether anything of the apply keeps its record cursors where they are, so that the next
    incremental read sees it again: an op pending, unanswered or of consent, or a contact the vendor
    refused in fewer than `REFUSALS_HOLD` applies since it was last confirmed."""
    stubborn = await sync.store.count_refusals(sync.name, state.refused, confirmed, at_least=REFUSALS_HOLD)
    return bool(state.holding or state.refused - stubborn)


async def _settle_jobs(
    sync: Sync, side: Side, adapter: Adapter, batch: Sequence[Op], outcomes: list[Outcome], wait: float
) -> list[Outcome]:
    """Replace outcomes that are pending in vendor jobs by the jobs' final outcomes.

    `batch` is the ops as the adapter was given them; each job is stored with its own before the
    first poll, so a crash while it runs leaves it recorded, never to be submitted again."""
    jobs: dict[str, list[int]] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.job is not None:
            jobs.setdefault(outcome.job, []).append(index)
    for job, indexes in jobs.items():
        ops = [batch[i] for i in indexes]
        job_id = await sync.store.add_job(sync.name, side, job, batch[0].kind, msgspec.msgpack.encode(ops))
        final = await _poll(sync, adapter, job, job_id, ops, wait)
        if final is None:
            continue  # still running after `wait`: left open in the store for the imports process
        for position, index in enumerate(indexes):
            outcomes[index] = (
                final[position] if position < len(final) else Outcome(False, "job lost this row")
            )
    return outcomes


async def _poll(
    sync: Sync, adapter: Adapter, job: str, job_id: int, ops: Sequence[Op], wait: float
) -> Sequence[Outcome] | None:
    delay = POLL_FIRST
    with anyio.move_on_after(wait):
        while True:
            status = await with_retries(lambda: adapter.poll(job, ops))
            await sync.store.update_job(job_id, status.state, status.terminal, status.detail)
            if status.terminal:
                return ended_outcomes(job, status, len(ops))
            await anyio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)
    return None


def ended_outcomes(job: str, status: JobStatus, count: int) -> Sequence[Outcome]:
    """A terminal job's outcome per op: the vendor's own, or the job's failure for every op."""
    if status.outcomes:
        return status.outcomes
    return [Outcome(False, f"job {job} ended {status.state}: {status.detail or 'no detail'}")] * count


def _for_side(op: Op, rules: RuleSet) -> Op:
    """A CRM op with its field names in the CRM's vocabulary (the plan speaks the ESP's).
    Activity ops already name CRM fields (campaign totals) or the activity's own details."""
    if not op.changes or op.kind == "record_activity":
        return op
    kind: RecordKind = "lead" if op.record_kind == "lead" else "person"
    renamed: dict[str, Change] = {}
    for name, change in op.changes.items():
        try:
            renamed[rules.mapping(name).crm_field_for(kind)] = change
        except KeyError:
            renamed[name] = change  # opted_out and other record-level flags keep their names
    return msgspec.structs.replace(op, changes=renamed)


async def _commit(sync: Sync, plan: Plan, state: _Progress) -> set[str]:
    """Write the base of every contact the apply settled; returns those whose every op went through."""
    upserts: dict[str, tuple[Record, int | None, int | None]] = {}
    deletes: list[str] = []
    partial: dict[str, Record] = {}
    for email, target in plan.targets.items():
        if email in state.failed:
            if target is not None:  # a contact is forgotten only once all its ops went through
                partial[email] = target
            continue
        if target is None:
            deletes.append(email)
            continue
        crm_fp, esp_fp = plan.fingerprints.get(email, (None, None))
        upserts[email] = (
            target,
            _stored_fp(crm_fp, state, email, "crm"),
            _stored_fp(esp_fp, state, email, "esp"),
        )
    upserts.update(await _confirmed_parts(sync, partial, state))
    moved: set[str] = set()  # written meanwhile by another run of the rule set: diffed again next time
    await sync.store.commit_base(
        sync.name, upserts, deletes, plan.context, since=plan.tokens.base, moved=moved
    )
    state.failed |= moved  # as for a failed op: cursors stay, so the next read sees them again
    state.holding |= moved
    return (upserts.keys() | deletes) - partial.keys() - moved


async def _confirmed_parts(
    sync: Sync, targets: dict[str, Record], state: _Progress
) -> dict[str, tuple[Record, int | None, int | None]]:
    """Bases for contacts with an op not confirmed: their targets but for what those ops were to
    change. A side's row may hold more than that (what its confirmed ops wrote, while the other
    side's failed), so no row fingerprint stands for such a base: both rows are read again."""
    if not targets:
        return {}
    stored = await sync.store.load_base_rows(sync.name, targets)
    bases: dict[str, tuple[Record, int | None, int | None]] = {}
    for email, target in targets.items():
        base = stored[email][0] if email in stored else None
        unconfirmed = state.unconfirmed.get(email, [])
        record = partly_confirmed(target, base, unconfirmed, esp_written=(email, "esp") in state.written)
        if record is not None and record != base:
            bases[email] = (record, None, None)
    return bases


def _stored_fp(planned: int | None, state: _Progress, email: str, side: Side) -> int | None:
    return state.written.get((email, side)) if planned == WRITTEN else planned


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
