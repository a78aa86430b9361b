"""Apply under faults: rejected rows, transient errors, vendor jobs, a crash before the commit, and
what of it holds the record cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import stamina

from engine.applying import REFUSALS_HOLD, ApplyReport, apply_plan
from engine.contract import Adapter, JobStatus, Outcome, PartialWrite, Snapshot
from engine.errors import TransientError
from engine.planning import make_plan, records_stream
from engine.plans import Op, OpKind
from engine.session import Sync
from tests.files_world import World, crm_person

pytestmark = pytest.mark.asyncio


@dataclass
class Faulty:
    """Wraps a real adapter: fails the first writes, rejects some emails, or answers with jobs."""

    inner: Adapter
    transient_failures: int = 0
    reject: set[str] = field(default_factory=set)
    as_jobs: bool = False
    polls_to_finish: int = 2
    writes: int = 0
    jobs: dict[str, tuple[int, list[Outcome]]] = field(default_factory=dict)
    # Jobs answer half the ops, then the vendor fails: once, or (`False`) for every write after.
    cut_short: bool | None = None
    sent: list[list[str | None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "faulty"

    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        return await self.inner.snapshot(cursor)

    async def version(self) -> str:
        return await self.inner.version()

    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        self.writes += 1
        if kind == "upsert_contact":
            self.sent.append([op.email for op in ops])
        if self.cut_short is not None and kind == "upsert_contact":
            return await self._cut_short(kind, ops)
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientError("503 from the vendor", retry_after=1)
        kept = [op for op in ops if op.email not in self.reject]
        done = iter(await self.inner.write(kind, kept))
        outcomes = [
            Outcome(False, "vendor refused: invalid address") if op.email in self.reject else next(done)
            for op in ops
        ]
        if self.as_jobs and kind == "upsert_contact":
            job = f"job-{len(self.jobs) + 1}"
            self.jobs[job] = (0, outcomes)
            return [Outcome(True, job=job)] * len(ops)
        return outcomes

    async def _cut_short(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if len(self.sent) == 1:  # the first write: the vendor takes half, then fails
            half = len(ops) // 2
            taken = await self._as_job(kind, ops[:half])
            raise PartialWrite(
                TransientError("503 on the second import"), [*taken, *[None] * (len(ops) - half)]
            )
        if not self.cut_short:
            raise TransientError("503 from the vendor")
        return await self._as_job(kind, ops)

    async def _as_job(self, kind: OpKind, ops: Sequence[Op]) -> list[Outcome]:
        outcomes = list(await self.inner.write(kind, ops))
        job = f"job-{len(self.jobs) + 1}"
        self.jobs[job] = (0, outcomes)
        return [Outcome(True, job=job)] * len(ops)

    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        polls, outcomes = self.jobs[job]
        assert len(ops) == len(outcomes)  # the engine hands back the ops the job carried
        self.jobs[job] = (polls + 1, outcomes)
        if polls + 1 < self.polls_to_finish:
            return JobStatus("NotFinished", False)
        return JobStatus("Finished", True, tuple(outcomes))

    async def flush(self) -> None:
        await self.inner.flush()

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def faulty_esp(world: World, **faults: object) -> AsyncIterator[tuple[Sync, Faulty]]:
    async with world.sync() as sync:
        esp = Faulty(sync.esp, **faults)  # type: ignore[arg-type]
        yield replace(sync, esp=esp), esp


def seed(tmp_path: Path, n: int = 6) -> World:
    world = World(tmp_path)
    world.write("crm.jsonl", [crm_person(f"p{i}@example.com") for i in range(n)])
    return world


async def test_a_rejected_row_is_recorded_and_the_rest_goes_on(tmp_path: Path) -> None:
    world = seed(tmp_path)
    async with faulty_esp(world, reject={"p2@example.com"}) as (sync, _):
        report = await apply_plan(sync, await make_plan(sync))
        history = await sync.store.outcomes_for("p2@example.com", "world")
    assert report.rejected["upsert_contact"] == 1
    assert report.done["upsert_contact"] == 5
    assert report.reasons["vendor refused: invalid address"] >= 1
    assert any(row.outcome == "rejected" and row.reason for row in history)
    assert "p2@example.com" not in world.read("esp.jsonl")
    # The rejected contact was not confirmed, so it is planned again; the others are done.
    again = await world.plan()
    assert {op.email for op in again.ops if op.email} == {"p2@example.com"}


async def test_transient_errors_are_retried_until_the_write_succeeds(tmp_path: Path) -> None:
    world = seed(tmp_path)
    with stamina.set_testing(True, attempts=6, cap=True):
        async with faulty_esp(world, transient_failures=3) as (sync, esp):
            report = await apply_plan(sync, await make_plan(sync))
    assert sum(report.rejected.values()) == 0
    assert esp.writes > 3
    assert (await world.plan()).ops == ()


async def test_vendor_jobs_are_stored_and_polled_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.applying

    monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
    world = seed(tmp_path)
    async with faulty_esp(world, as_jobs=True, polls_to_finish=3, reject={"p4@example.com"}) as (sync, _):
        report = await apply_plan(sync, await make_plan(sync))
        jobs = await sync.store.jobs("world")
    assert [(job.state, job.terminal, job.polls) for job in jobs] == [("Finished", True, 3)]
    assert report.done["upsert_contact"] == 5 and report.rejected["upsert_contact"] == 1
    assert {op.email for op in (await world.plan()).ops if op.email} == {"p4@example.com"}


async def test_a_crash_before_the_commit_replays_safely_and_keeps_opt_outs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = seed(tmp_path)
    await world.apply()
    world.edit("crm.jsonl", "p1@example.com", opted_out=True)
    world.edit("esp.jsonl", "p2@example.com", opted_out=True, opt_out_reason="unsubscribed")

    async def crash(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt("killed between the vendor writes and the base commit")

    async with world.sync() as sync:
        plan = await make_plan(sync)
        monkeypatch.setattr(sync.store, "commit_base", crash)
        with pytest.raises(KeyboardInterrupt):
            await apply_plan(sync, plan)
        runs = await sync.store.runs("world")
    assert runs[0].outcome == "failed"
    monkeypatch.undo()
    # The vendor writes happened, the base did not move: the next plan finds the sides agreeing.
    replay = await world.plan()
    assert replay.ops == ()
    assert replay.targets  # ... and the base catches up on the next apply
    await world.apply()
    assert world.read("esp.jsonl")["p1@example.com"]["opted_out"] is True
    assert world.read("crm.jsonl")["p2@example.com"]["opted_out"] is True
    assert (await world.plan()).targets == {}


async def test_a_fingerprint_of_minus_one_is_stored_as_it_is() -> None:
    """-1 is a valid signed 64-bit fingerprint; it once doubled as the 'take the written row' mark."""
    from engine.applying import _Progress, _stored_fp
    from engine.reconciling import WRITTEN

    progress = _Progress(written={("a@example.com", "esp"): 42})
    assert _stored_fp(-1, progress, "a@example.com", "esp") == -1
    assert _stored_fp(WRITTEN, progress, "a@example.com", "esp") == 42
    assert _stored_fp(WRITTEN, progress, "a@example.com", "crm") is None


async def apply_cut_short(
    world: World, monkeypatch: pytest.MonkeyPatch, *, recovers: bool, attempts: int
) -> tuple[ApplyReport, list[str], Faulty]:
    """A first sync whose first write the vendor takes half of, then fails (once, or for good)."""
    import engine.applying

    monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
    with stamina.set_testing(True, attempts=attempts, cap=True):
        async with faulty_esp(world, cut_short=recovers, polls_to_finish=1) as (sync, esp):
            report = await apply_plan(sync, await make_plan(sync))
            jobs = [job.vendor_job_id for job in await sync.store.jobs("world")]
    return report, sorted(jobs), esp


async def test_a_write_cut_short_is_repeated_for_the_ops_the_vendor_did_not_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = seed(tmp_path)
    report, jobs, esp = await apply_cut_short(world, monkeypatch, recovers=True, attempts=6)
    first, second = esp.sent
    assert len(first) == 6 and second == first[3:]  # the taken half was not submitted again
    assert jobs == ["job-1", "job-2"] == sorted(esp.jobs)
    assert report.done["upsert_contact"] == 6 and (await world.plan()).ops == ()


async def test_when_retries_run_out_the_jobs_taken_are_still_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = seed(tmp_path)
    report, jobs, esp = await apply_cut_short(world, monkeypatch, recovers=False, attempts=3)
    assert jobs == ["job-1"] and len(esp.sent) == 3
    assert report.done["upsert_contact"] == 3 and report.rejected["upsert_contact"] == 3
    assert any(reason.startswith("not written: 503") for reason in report.reasons)
    again = await world.plan()
    assert {op.email for op in again.ops if op.kind == "upsert_contact"} == set(esp.sent[0][3:])


async def crm_cursor(world: World) -> str | None:
    async with world.sync() as sync:
        return await sync.store.get_cursor(sync.name, "crm", records_stream(None))


async def test_a_refusal_that_keeps_coming_stops_holding_the_cursors_after_a_few_applies(
    tmp_path: Path,
) -> None:
    world = seed(tmp_path)
    for _ in range(REFUSALS_HOLD - 1):
        async with faulty_esp(world, reject={"p2@example.com"}) as (sync, _):
            await apply_plan(sync, await make_plan(sync))
        assert await crm_cursor(world) is None  # held, so the next read sees p2 again
    async with faulty_esp(world, reject={"p2@example.com"}) as (sync, _):
        report = await apply_plan(sync, await make_plan(sync))
    assert report.rejected["upsert_contact"] == 1
    moved = await crm_cursor(world)
    assert moved is not None  # refused as often as that, p2 waits for a change or a whole read
    # It is still planned whenever it is read, and confirmed once the vendor takes it.
    async with faulty_esp(world) as (sync, _):
        plan = await make_plan(sync)
        assert {op.email for op in plan.ops} == {"p2@example.com"}
        await apply_plan(sync, plan)
    assert "p2@example.com" in world.read("esp.jsonl")
    # Confirmed, its count starts again: one new refusal holds the cursors once more.
    world.edit("crm.jsonl", "p2@example.com", first_name="Again")
    async with world.sync() as sync:
        await sync.store.set_cursor(sync.name, "crm", records_stream(None), "before")
    async with faulty_esp(world, reject={"p2@example.com"}) as (sync, _):
        await apply_plan(sync, await make_plan(sync))
    assert await crm_cursor(world) == "before"


async def test_a_refused_opt_out_always_holds_the_cursors(tmp_path: Path) -> None:
    world = seed(tmp_path)
    await world.apply()
    world.edit("crm.jsonl", "p3@example.com", opted_out=True)
    async with world.sync() as sync:
        await sync.store.set_cursor(sync.name, "crm", records_stream(None), "before")
    for _ in range(REFUSALS_HOLD + 1):
        async with faulty_esp(world, reject={"p3@example.com"}) as (sync, _):
            plan = await make_plan(sync)
            assert [op.kind for op in plan.ops] == ["opt_out_esp"]
            await apply_plan(sync, plan)
        assert await crm_cursor(world) == "before"
