"""The state store against real SQLite files, on real time (aiosqlite works on its own thread)."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec
import pytest

from engine.errors import PermanentError
from engine.records import Record
from engine.store import StateStore
from engine.store_schema import MIGRATIONS, SCHEMA_VERSION, statements

RULES = "members"
BIG = -(2**63)  # fingerprints are signed 64-bit; the extremes must survive the round trip
TOP = 2**63 - 1


def record(email: str, *lists: str, opted_out: bool = False, **fields: str) -> Record:
    return Record(email=email, opted_out=opted_out, fields=dict(fields), lists=frozenset(lists))


def upsert(*records: Record, crm: int | None = 1, esp: int | None = 2):
    return {r.email: (r, crm, esp) for r in records}


def clock() -> float:
    return 1_700_000_000.0


@pytest.mark.asyncio
async def test_new_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    async with await StateStore.open(path, clock=clock) as store:
        await store.set_cursor(RULES, "crm", "people", "c1")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for sibling in ("-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{path}{sibling}").stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


@pytest.mark.asyncio
async def test_older_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO cursors VALUES (?, 'esp', 'contacts', 'cursor-at-v1', 1.0)", (RULES,))
    conn.execute("INSERT INTO base_meta VALUES (?, 7, 'ctx', 0)", (RULES,))
    conn.execute("PRAGMA user_version = 1")
    conn.close()

    async with await StateStore.open(path) as store:
        assert await store.get_cursor(RULES, "esp", "contacts") == "cursor-at-v1"
        assert await store.base_version(RULES) == 7
        run = await store.start_run(RULES, "members")  # a table v2 added
        assert [r.id for r in await store.runs(RULES)] == [run]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


@pytest.mark.asyncio
async def test_database_from_the_future_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PermanentError, match=r"schema version \d+, newer than this listsync"):
        await StateStore.open(path)


@pytest.mark.asyncio
async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PermanentError, match="unusable"):
        await StateStore.open(path)


@pytest.mark.asyncio
async def test_commit_base_round_trip(tmp_path: Path) -> None:
    ann = record("ann@example.com", "news", "offers", first="Ann")
    bob = record("bob@example.com", "news", opted_out=True)
    async with await StateStore.open(tmp_path / "state.db", clock=clock) as store:
        assert await store.base_version(RULES) == 0
        assert await store.base_context(RULES) is None
        version = await store.commit_base(
            RULES,
            {ann.email: (ann, BIG, TOP), bob.email: (bob, 0, None)},
            [],
            context="ctx-1",
        )
        assert version == 1
        assert await store.base_context(RULES) == "ctx-1"
        assert await store.load_base(RULES) == {ann.email: ann, bob.email: bob}
        assert await store.list_sizes(RULES) == {"news": 2, "offers": 1}
        index = await store.fingerprint_index(RULES)
        assert (BIG in index.crm, 0 in index.crm, len(index.crm)) == (True, True, 2)
        assert (TOP in index.esp, len(index.esp)) == (True, 1)
        assert index.records == 2 == await store.base_count(RULES)
        # Ann's CRM row vanished or changed (her fingerprint was not seen); Bob's ESP row has none.
        assert await store.emails_to_recheck(RULES, "crm", [BIG], version=1) == [ann.email]
        assert await store.emails_to_recheck(RULES, "esp", [], version=1) == [bob.email]
        # A plan made at an earlier version compared its rows with none of these rows' fingerprints.
        assert await store.emails_to_recheck(RULES, "esp", [], version=0) == []
        assert await store.emails_written_after(RULES, 0, [ann.email, "nobody@example.com"]) == {ann.email}
        assert await store.emails_written_after(RULES, 1, [ann.email]) == set()
        rows = await store.load_base_rows(RULES, [bob.email, "nobody@example.com"])
        assert rows == {bob.email: (bob, 0, None)}

        # The same records and context again: nothing changed, no bump.
        same = {ann.email: (ann, BIG, TOP), bob.email: (bob, 0, None)}
        assert await store.commit_base(RULES, same, [], context="ctx-1") == 1

        # Ann leaves "offers" and joins "events"; Bob is forgotten.
        moved = record("ann@example.com", "news", "events", first="Ann")
        version = await store.commit_base(RULES, upsert(moved), [bob.email], context="ctx-1")
        assert version == 2
        assert await store.list_sizes(RULES) == {"news": 1, "events": 1}
        assert await store.load_base(RULES) == {ann.email: moved}
        assert await store.base_count(RULES) == 1

        # Only a fingerprint changed: still a change.
        assert await store.commit_base(RULES, upsert(moved, crm=5), [], "ctx-1") == 3
        # Only the context changed: a change too, since plans are made under a context.
        assert await store.commit_base(RULES, {}, [], "ctx-2") == 4
        assert await store.base_context(RULES) == "ctx-2"
        # Deleting someone who is not there changes nothing.
        assert await store.commit_base(RULES, {}, ["nobody@example.com"], "ctx-2") == 4


@pytest.mark.asyncio
async def test_commit_base_refuses_bad_input(tmp_path: Path) -> None:
    ann = record("ann@example.com")
    async with await StateStore.open(tmp_path / "state.db") as store:
        with pytest.raises(ValueError, match="both upserted and deleted"):
            await store.commit_base(RULES, upsert(ann), [ann.email], "c")
        with pytest.raises(ValueError, match="not a signed 64-bit"):
            await store.commit_base(RULES, upsert(ann, crm=2**63), [], "c")
        with pytest.raises(ValueError, match="carries email"):
            await store.commit_base(RULES, {"other@example.com": (ann, 1, 1)}, [], "c")
        assert await store.base_version(RULES) == 0


@pytest.mark.asyncio
async def test_load_base_subset(tmp_path: Path) -> None:
    records = [record(f"u{i}@example.com", "news") for i in range(100)]
    async with await StateStore.open(tmp_path / "state.db") as store:
        await store.commit_base(RULES, upsert(*records), [], "c")
        wanted = ["u3@example.com", "u42@example.com", "missing@example.com"]
        loaded = await store.load_base(RULES, wanted)
        assert loaded == {"u3@example.com": records[3], "u42@example.com": records[42]}
        assert await store.load_base(RULES, []) == {}
        assert await store.load_base("other rules") == {}


@pytest.mark.asyncio
async def test_failed_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    ann = record("ann@example.com", "news")
    async with await StateStore.open(tmp_path / "state.db") as store:
        await store.commit_base(RULES, upsert(ann), [], "c1")
        good = {f"u{i}@example.com": (record(f"u{i}@example.com", "news"), i, i) for i in range(50_000)}
        # Far past the first chunk, a record msgpack cannot encode.
        bad = Record(email="zz@example.com", fields={"x": object()})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            await store.commit_base(RULES, {**good, bad.email: (bad, 1, 1)}, [ann.email], "c2")
        assert await store.base_version(RULES) == 1
        assert await store.base_context(RULES) == "c1"
        assert await store.load_base(RULES) == {ann.email: ann}
        assert await store.list_sizes(RULES) == {"news": 1}
        # The connection is usable afterwards: no transaction was left open.
        assert await store.commit_base(RULES, {}, [ann.email], "c1") == 2


@pytest.mark.asyncio
async def test_cursors_and_lists(tmp_path: Path) -> None:
    times = iter([10.0, 20.0, 30.0, 40.0])
    async with await StateStore.open(tmp_path / "state.db", clock=lambda: next(times)) as store:
        assert await store.get_cursor(RULES, "crm", "people") is None
        await store.set_cursor(RULES, "crm", "people", "a")
        await store.set_cursor(RULES, "crm", "people", "b")
        assert await store.get_cursor(RULES, "crm", "people") == "b"
        assert await store.get_cursor(RULES, "esp", "people") is None

        await store.remember_list(RULES, "esp", "News", "ab-1")
        await store.remember_list(RULES, "esp", "Offers", "ab-2")
        assert await store.known_lists(RULES, "esp") == {"News": "ab-1", "Offers": "ab-2"}
        assert await store.known_lists(RULES, "crm") == {}


@pytest.mark.asyncio
async def test_jobs(tmp_path: Path) -> None:
    payload = msgspec.msgpack.encode([{"kind": "add_member", "email": "ann@example.com"}])
    async with await StateStore.open(tmp_path / "state.db", clock=clock) as store:
        first = await store.add_job(RULES, "esp", "job-1", "add_member", payload)
        second = await store.add_job(RULES, "esp", "job-2", "upsert_contact", b"")
        with pytest.raises(ValueError, match="already recorded"):
            await store.add_job(RULES, "esp", "job-1", "add_member", b"")

        await store.update_job(first, "processing", terminal=False)
        await store.update_job(first, "finished", terminal=True, detail="3 rows, 1 fault")
        await store.update_job(second, "processing", terminal=False, detail="queued")
        await store.update_job(second, "processing", terminal=False)
        with pytest.raises(KeyError):
            await store.update_job(999, "finished", terminal=True)

        (still_open,) = await store.open_jobs()
        assert (still_open.id, still_open.state, still_open.polls) == (second, "processing", 2)
        assert still_open.detail == "queued"
        assert still_open.terminal is False
        assert await store.open_jobs("other rules") == []

        newest, oldest = await store.jobs(RULES)
        assert (newest.id, oldest.id) == (second, first)
        assert oldest.terminal is True and oldest.polls == 2
        assert oldest.payload == payload
        assert oldest.submitted_at == clock()


@pytest.mark.asyncio
@pytest.mark.parametrize("steps", range(6))
async def test_a_write_cancelled_at_any_await_leaves_no_transaction_open(tmp_path: Path, steps: int) -> None:
    """A timeout around a job poll once cancelled ``update_job`` while BEGIN was on aiosqlite's thread:
    the transaction stayed open and every later write failed with "cannot start a transaction"."""
    async with await StateStore.open(tmp_path / "state.db", clock=clock) as store:
        job = await store.add_job(RULES, "esp", "job-1", "add_member", b"")
        async with anyio.create_task_group() as group:
            group.start_soon(store.update_job, job, "processing", False)
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
        await store.update_job(job, "finished", terminal=True)
        (record,) = await store.jobs(RULES)
        assert record.state == "finished"


@pytest.mark.asyncio
async def test_runs_and_outcomes_by_email(tmp_path: Path) -> None:
    async with await StateStore.open(tmp_path / "state.db", clock=clock) as store:
        run = await store.start_run(RULES, "members")
        (running,) = await store.runs()
        assert running.outcome == "running" and running.finished_at is None
        await store.record_outcomes(
            run,
            [
                ("ann@example.com", "add_member", "done", None),
                ("bob@example.com", "upsert_contact", "rejected", "invalid email"),
            ],
        )
        await store.finish_run(run, "ok", {"add_member": 1, "rejected": 1}, detail="fine")
        (finished,) = await store.runs(RULES)
        assert finished.outcome == "ok"
        assert finished.counts == {"add_member": 1, "rejected": 1}
        assert finished.finished_at == clock()

        (bob,) = await store.outcomes_for("bob@example.com")
        assert (bob.run_id, bob.rule_set, bob.kind) == (run, RULES, "upsert_contact")
        assert (bob.outcome, bob.reason) == ("rejected", "invalid email")
        assert await store.outcomes_for("bob@example.com", "other rules") == []

        with pytest.raises(KeyError):
            await store.record_outcomes(999, [("ann@example.com", "add_member", "done", None)])
        with pytest.raises(KeyError):
            await store.finish_run(999, "failed", {})
        with pytest.raises(ValueError):
            await store.finish_run(run, "running", {})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_two_rule_sets_in_one_file_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ann_a = record("ann@example.com", "news", first="A")
    ann_b = record("ann@example.com", "offers", first="B")
    async with await StateStore.open(path, clock=clock) as store:
        await store.commit_base("a", upsert(ann_a, crm=1), [], "ctx-a")
        await store.commit_base("b", upsert(ann_b, crm=2), [], "ctx-b")
        await store.commit_base("b", {}, [], "ctx-b2")
        await store.set_cursor("a", "crm", "people", "cursor-a")
        await store.start_run("b", "members")
        await store.add_job("a", "esp", "job-1", "add_member", b"")
        await store.add_job("b", "esp", "job-1", "add_member", b"")  # same vendor id, other rules

    async with await StateStore.open(path, clock=clock) as store:
        assert (await store.base_version("a"), await store.base_version("b")) == (1, 2)
        assert await store.base_context("a") == "ctx-a"
        assert await store.load_base("a") == {ann_a.email: ann_a}
        assert await store.load_base("b") == {ann_b.email: ann_b}
        assert await store.list_sizes("a") == {"news": 1}
        assert (
            2 in (await store.fingerprint_index("b")).crm,
            1 in (await store.fingerprint_index("b")).crm,
        ) == (
            True,
            False,
        )
        assert await store.get_cursor("b", "crm", "people") is None
        assert await store.runs("a") == []
        assert [job.rule_set for job in await store.open_jobs("a")] == ["a"]
        assert len(await store.open_jobs()) == 2
        # Forgetting Ann under "a" leaves her (and her list counts) under "b".
        await store.commit_base("a", {}, [ann_a.email], "ctx-a")
        assert await store.list_sizes("a") == {}
        assert await store.list_sizes("b") == {"offers": 1}


@pytest.mark.asyncio
async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "state.db")
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.base_version(RULES)


def test_base_lookups_by_email_use_the_primary_key() -> None:
    """The planner once chose to scan the whole base per incoming email; keep it from coming back."""
    from engine import store as module

    conn = sqlite3.connect(":memory:")
    for step in MIGRATIONS:
        for statement in statements(step):
            conn.execute(statement)
    for sql in (module._OLD_ROWS,):
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (RULES, "[]"))]
        scans = [step for step in plan if step.startswith("SCAN") and "VIRTUAL TABLE" not in step]
        assert not scans, plan
        assert any("SEARCH b USING PRIMARY KEY (rule_set=? AND email=?)" in s for s in plan), plan
    conn.close()


@pytest.mark.asyncio
async def test_a_commit_leaves_rows_another_commit_wrote_since_its_plan(tmp_path: Path) -> None:
    ann = record("ann@example.com", "news", first="Ann")
    bob = record("bob@example.com", "news", first="Bob")
    cy = record("cy@example.com", "news", first="Cy")
    async with await StateStore.open(tmp_path / "state.db", clock=clock) as store:
        planned_at = await store.commit_base(RULES, {**upsert(ann), **upsert(bob), **upsert(cy)}, [], "c")
        # Another run, planned later, commits first: Ann renamed, Cy forgotten, Dee new.
        dee = record("dee@example.com", "news", first="Dee")
        newer_ann = record("ann@example.com", "news", first="Annie")
        await store.commit_base(
            RULES, {**upsert(newer_ann), **upsert(dee)}, [cy.email], "c", since=planned_at
        )
        # The first run commits what its older plan knew of all four.
        moved: set[str] = set()
        stale = {e: (record(e, "news", first="old"), None, None) for e in (ann.email, bob.email, dee.email)}
        await store.commit_base(RULES, stale, [], "c", since=planned_at, moved=moved)
        assert moved == {ann.email, dee.email}  # written since its plan: left as the later run wrote them
        base = await store.load_base(RULES)
        assert base[ann.email] == newer_ann and base[dee.email] == dee
        assert base[bob.email].fields["first"] == "old"  # untouched since: written
        assert await store.list_sizes(RULES) == {"news": 3}
        # Without `since` (a lone apply, the CLI), the commit writes everything, as before.
        await store.commit_base(RULES, stale, [], "c")
        assert (await store.load_base(RULES))[ann.email].fields["first"] == "old"


@pytest.mark.asyncio
async def test_a_store_closed_in_a_cancelled_run_still_ends_its_worker_thread(tmp_path: Path) -> None:
    """The service cancels runs still going at its stop deadline; their stores close regardless,
    or the connection's thread (not a daemon) keeps the process from exiting."""
    store = await StateStore.open(tmp_path / "state.db", clock=clock)
    worker = store._connection()._thread
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
