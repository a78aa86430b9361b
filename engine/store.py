"""The state store: what listsync must remember between runs, in one SQLite file per state path.

It holds, per rule set, the base of the three-way diff (the last state both sides confirmed, with
each side's row fingerprint and its list memberships), member counts per list, snapshot cursors,
the vendor lists listsync resolved, the import jobs it submitted, and run history with row-level
outcomes, and each side's OAuth grant (`SideTokens`, written by `listsync auth` and the adapter's
refreshes). Writes are transactions taken only after a vendor confirmed, so a crash at any point
replays safely.

One `StateStore` owns one aiosqlite connection. Every call holds the store's lock for its whole
statement or transaction, so concurrent tasks never read another task's uncommitted writes.
Timestamps come from the injected ``clock`` only. Usage::

    async with await StateStore.open(path) as store:
        version = await store.commit_base("rules", upserts, deletes, context)

Fingerprints are signed 64-bit integers (`engine.fingerprints`), stored as they are; each side's
are also kept as one sorted array per rule set, so a plan loads them in one read.
The schema and its migrations live in `engine.store_schema`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiosqlite
import anyio
import anyio.to_thread
import msgspec
from msgspec import Struct

from engine.contract import OAuthTokens
from engine.errors import PermanentError, TransientError
from engine.fingerprints import FingerprintSet
from engine.records import Record
from engine.ruleset import Side
from engine.store_schema import migrate

Clock = Callable[[], float]
_T = TypeVar("_T")
RunOutcome = Literal["running", "ok", "partial", "failed", "held"]
RowOutcome = Literal["done", "rejected", "pending"]
# (email, list or field; op kind; outcome; reason): one row of a run's row-level outcomes.
OutcomeRow = tuple[str, str, RowOutcome, str | None]
# email -> (record, crm fingerprint, esp fingerprint)
BaseUpserts = Mapping[str, tuple[Record, int | None, int | None]]

_I64_LIMIT = 1 << 63
_CHUNK = 20_000
_BUSY_TIMEOUT = 30.0
_FINISHED: frozenset[str] = frozenset({"ok", "partial", "failed", "held"})
_ROW_OUTCOMES: frozenset[str] = frozenset({"done", "rejected", "pending"})
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_BROKEN_CODES = frozenset(
    {
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PERM,
    }
)

# Sets and dicts are sorted so that an unchanged record encodes to the same bytes in every process,
# which is what lets `commit_base` tell a real change from a rewrite.
_encode_record = msgspec.msgpack.Encoder(order="deterministic").encode
_decode_record = msgspec.msgpack.Decoder(Record).decode
_encode_json = msgspec.json.Encoder().encode
_decode_lists = msgspec.json.Decoder(list[str]).decode


@dataclass(frozen=True)
class SideTokens:
    """The `engine.contract.TokenStore` of one rule set's side: its OAuth grant in the state store.

    Keyed by rule set, side and adapter (see `engine.store_schema`'s v4), so rule sets sharing a state
    file never read or rotate each other's grant. Its repr names the key, never a token."""

    store: StateStore = field(repr=False)
    rule_set: str
    side: Side
    adapter: str

    async def load(self) -> OAuthTokens | None:
        return await self.store.load_tokens(self.rule_set, self.side, self.adapter)

    async def save(self, tokens: OAuthTokens) -> None:
        await self.store.save_tokens(self.rule_set, self.side, self.adapter, tokens)


@dataclass(frozen=True)
class FingerprintIndex:
    """Every side row fingerprint stored with the base, and how many records the base holds.

    Sorted arrays, not maps to emails: building a million email strings is what would make a plan
    slow. The emails of the few rows that changed or vanished are looked up afterwards.
    """

    crm: FingerprintSet
    esp: FingerprintSet
    records: int


BaseRow = tuple[Record, int | None, int | None]


class JobRecord(Struct, frozen=True):
    """A vendor import job listsync submitted, as last polled."""

    id: int
    rule_set: str
    side: Side
    vendor_job_id: str
    kind: str
    state: str
    terminal: bool
    submitted_at: float
    updated_at: float
    polls: int
    detail: str | None
    payload: bytes


class RunRecord(Struct, frozen=True):
    """One run of one process for one rule set."""

    id: int
    rule_set: str
    process: str
    started_at: float
    finished_at: float | None
    outcome: RunOutcome
    counts: dict[str, int]
    detail: str | None


HeldState = Literal["held", "approved", "discarded", "applied", "superseded"]


class HeldPlan(Struct, frozen=True):
    """A plan the service held back at a safety threshold, and what a person decided about it."""

    id: int
    rule_set: str
    process: str
    held_at: float
    state: HeldState
    decided_at: float | None
    stops: list[str]
    summary: dict[str, int]
    plan: bytes


class OutcomeRecord(Struct, frozen=True):
    """What happened to one row of one op in one run."""

    run_id: int
    rule_set: str
    email: str
    kind: str
    outcome: RowOutcome
    reason: str | None
    at: float


_UPSERT_BASE = """
INSERT INTO base (rule_set, email, kind, opted_out, crm_fp, esp_fp, lists, record, changed_in)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (rule_set, email) DO UPDATE SET
    kind = excluded.kind, opted_out = excluded.opted_out, crm_fp = excluded.crm_fp,
    esp_fp = excluded.esp_fp, lists = excluded.lists, record = excluded.record,
    changed_in = excluded.changed_in
WHERE base.record IS NOT excluded.record
   OR base.crm_fp IS NOT excluded.crm_fp
   OR base.esp_fp IS NOT excluded.esp_fp
"""
_OLD_ROWS = """
SELECT b.email, b.lists, b.crm_fp, b.esp_fp, b.changed_in FROM json_each(?2) AS wanted
CROSS JOIN base AS b ON b.rule_set = ?1 AND b.email = wanted.value
"""
_COUNT_MEMBERS = """
INSERT INTO list_counts (rule_set, list_name, members) VALUES (?, ?, ?)
ON CONFLICT (rule_set, list_name) DO UPDATE SET members = members + excluded.members
"""
_FORGET_BASE = "DELETE FROM base WHERE rule_set = ?1 AND email IN (SELECT value FROM json_each(?2))"
_BUMP_VERSION = """
INSERT INTO base_meta (rule_set, version, context, records)
VALUES (?1, 1, ?2, (SELECT count(*) FROM base WHERE rule_set = ?1))
ON CONFLICT (rule_set) DO UPDATE SET version = version + 1, context = excluded.context,
    records = excluded.records
RETURNING version
"""
_JOB_COLUMNS = (
    "id, rule_set, side, vendor_job_id, kind, state, terminal, submitted_at, updated_at, polls, "
    "detail, payload"
)
_RUN_COLUMNS = "id, rule_set, process, started_at, finished_at, outcome, counts, detail"
_OUTCOME_COLUMNS = "run_id, rule_set, email, kind, outcome, reason, at"
_HELD_COLUMNS = "id, rule_set, process, held_at, state, decided_at, stops, summary, plan"


class StateStore:
    """listsync's state database. Open with `StateStore.open`; close it, or use ``async with``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock) -> None:
        self._conn: aiosqlite.Connection | None = conn
        self._path = path
        self._clock = clock
        self._lock = anyio.Lock()

    def now(self) -> float:
        """The store's clock, which stamps every row: job ages are measured against it."""
        return self._clock()

    @classmethod
    async def open(cls, path: Path, *, clock: Clock = time.time) -> StateStore:
        """Open (creating it, and its directory, if missing) and migrate the database at `path`.

        A new file is created with mode 0600, and its WAL siblings under umask 077. Raises
        `PermanentError` if the file is not a listsync database or was written by a newer schema.
        """
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # O_EXCL: an existing file is left to SQLite. Closing any descriptor of a file drops every
            # POSIX lock this process holds on it, so opening and closing one here, while another
            # store of this process has the database open, would let another process take it for
            # the last connection and delete the WAL from under that store.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        except OSError as error:
            raise PermanentError(f"cannot create state database {path}: {error}") from error
        with _private_umask(), _translated(path, opening=True):
            conn = await aiosqlite.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT)
            try:
                await _prepare(conn, path)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await conn.close()
                raise
        return cls(conn, path, clock)

    async def close(self) -> None:
        """Close the connection; further calls raise. Closing twice is harmless.

        Shielded: a run cancelled at the service's stop deadline still closes its store, or the
        connection's worker thread (not a daemon) would keep the process from ever exiting."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    await conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    # --- the base --------------------------------------------------------------------------

    async def base_version(self, rule_set: str) -> int:
        """The base's version: bumped by every commit that changed it; 0 when nothing stored."""
        rows = await self._fetch("SELECT version FROM base_meta WHERE rule_set = ?", (rule_set,))
        return int(rows[0][0]) if rows else 0

    async def base_context(self, rule_set: str) -> str | None:
        """The context digest given with the last commit, or None before the first one."""
        rows = await self._fetch("SELECT context FROM base_meta WHERE rule_set = ?", (rule_set,))
        return str(rows[0][0]) if rows else None

    async def base_count(self, rule_set: str) -> int:
        rows = await self._fetch("SELECT records FROM base_meta WHERE rule_set = ?", (rule_set,))
        return int(rows[0][0]) if rows else 0

    async def fingerprint_index(self, rule_set: str) -> FingerprintIndex:
        """Both sides' stored row fingerprints, to spot unchanged snapshot rows without decoding."""
        rows = await self._fetch("SELECT side, fps FROM fingerprint_sets WHERE rule_set = ?", (rule_set,))
        sets = {side: FingerprintSet.from_bytes(blob) for side, blob in rows}
        empty = FingerprintSet()
        return FingerprintIndex(
            sets.get("crm", empty), sets.get("esp", empty), await self.base_count(rule_set)
        )

    async def emails_to_recheck(
        self, rule_set: str, side: Side, missing: Iterable[int], *, version: int
    ) -> list[str]:
        """Emails of base rows whose `side` row was not seen unchanged: their fingerprint is among
        `missing`, or they have none. Only rows as of base `version`: one another run wrote since
        was not in the fingerprints the caller compared its rows with."""
        column = "crm_fp" if side == "crm" else "esp_fp"
        wanted = _encode_json(sorted(_checked(fp) for fp in missing)).decode()
        rows = await self._fetch(
            f"SELECT b.email FROM json_each(?2) AS f CROSS JOIN base AS b "
            f"ON b.rule_set = ?1 AND b.{column} = f.value AND b.changed_in <= ?3 "
            f"UNION ALL SELECT email FROM base WHERE rule_set = ?1 AND {column} IS NULL AND changed_in <= ?3",
            (rule_set, wanted, version),
        )
        return [str(email) for (email,) in rows]

    async def emails_written_after(self, rule_set: str, version: int, emails: Iterable[str]) -> set[str]:
        """Of `emails`, those whose base row a commit after base `version` wrote."""
        rows = await self._fetch(
            "SELECT b.email FROM json_each(?2) AS wanted CROSS JOIN base AS b "
            "ON b.rule_set = ?1 AND b.email = wanted.value WHERE b.changed_in > ?3",
            (rule_set, _encode_json(sorted(emails)).decode(), version),
        )
        return {str(email) for (email,) in rows}

    async def load_base(self, rule_set: str, emails: Iterable[str] | None = None) -> dict[str, Record]:
        """Base records by email: all of them, or those of `emails` that are stored."""
        return {email: row[0] for email, row in (await self.load_base_rows(rule_set, emails)).items()}

    async def load_base_rows(self, rule_set: str, emails: Iterable[str] | None = None) -> dict[str, BaseRow]:
        """Base records with their (crm, esp) fingerprints: all, or those of `emails` stored."""
        if emails is None:
            sql = "SELECT email, record, crm_fp, esp_fp FROM base WHERE rule_set = ?"
            rows = await self._fetch(sql, (rule_set,))
        else:
            # One JSON parameter instead of chunked IN-lists: one statement whatever the count;
            # sorted, so that the lookups walk the table in order.
            sql = (
                "SELECT b.email, b.record, b.crm_fp, b.esp_fp FROM json_each(?2) AS wanted "
                "CROSS JOIN base AS b ON b.rule_set = ?1 AND b.email = wanted.value"
            )
            rows = await self._fetch(sql, (rule_set, _encode_json(sorted(emails)).decode()))
        return await anyio.to_thread.run_sync(_decode_rows, rows)

    async def list_sizes(self, rule_set: str) -> dict[str, int]:
        """Member count of every list that has members in the base."""
        rows = await self._fetch(
            "SELECT list_name, members FROM list_counts WHERE rule_set = ? AND members > 0", (rule_set,)
        )
        return {str(name): int(count) for name, count in rows}

    async def commit_base(
        self,
        rule_set: str,
        upserts: BaseUpserts,
        deletes: Iterable[str],
        context: str,
        *,
        since: int | None = None,
        moved: set[str] | None = None,
    ) -> int:
        """Store `upserts`, forget `deletes`, record `context`; returns the base version.

        One transaction: records with their fingerprints, the list counts, the deletions and the
        context all land, or none do. The version is bumped only if a record, a fingerprint, a
        deletion or the context actually changed.

        With `since` (the base version a plan was made from), a row another commit wrote after that
        version is left as that commit wrote it, and its email goes into `moved`: two runs of one
        rule set may apply at once, and the later plan's knowledge of a contact must not be
        overwritten by an earlier plan's. The contact is simply diffed again next time.
        """
        forgotten = list(dict.fromkeys(deletes))
        both = upserts.keys() & set(forgotten)
        if both:
            raise ValueError(f"emails both upserted and deleted: {sorted(both)[:5]}")
        items = list(upserts.items())
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT version, context FROM base_meta WHERE rule_set = ?", (rule_set,)
            )
            version, previous = next(iter(rows), (0, None))
            changed = previous != context
            delta = _Delta()

            async def current(emails: Sequence[str]) -> list[Any]:
                """The stored rows of `emails` this commit may replace (moved ones noted, left out)."""
                found = await conn.execute_fetchall(_OLD_ROWS, (rule_set, _encode_json(emails).decode()))
                newer = {row[0] for row in found if since is not None and row[4] > since}
                if moved is not None:
                    moved.update(newer)
                delta.drop(row for row in found if row[0] not in newer)
                return [email for email in emails if email not in newer]

            for chunk in _chunks(items):
                kept = set(await current([email for email, _ in chunk]))
                chunk = [item for item in chunk if item[0] in kept]
                delta.take(record_and_fps for _, record_and_fps in chunk)
                cursor = await conn.executemany(_UPSERT_BASE, _base_rows(rule_set, chunk, version + 1))
                changed |= cursor.rowcount > 0
            for doomed in _chunks(forgotten):
                gone = _encode_json(await current(doomed)).decode()
                cursor = await conn.execute(_FORGET_BASE, (rule_set, gone))
                changed |= cursor.rowcount > 0
            await conn.executemany(
                _COUNT_MEMBERS, [(rule_set, name, n) for name, n in delta.lists.items() if n]
            )
            await self._update_fingerprint_sets(conn, rule_set, delta)
            if changed:
                rows = await conn.execute_fetchall(_BUMP_VERSION, (rule_set, context))
                version = next(iter(rows))[0]
        return int(version)

    @staticmethod
    async def _update_fingerprint_sets(conn: aiosqlite.Connection, rule_set: str, delta: _Delta) -> None:
        rows = await conn.execute_fetchall(
            "SELECT side, fps FROM fingerprint_sets WHERE rule_set = ?", (rule_set,)
        )
        stored = {side: FingerprintSet.from_bytes(blob) for side, blob in rows}
        for side, (removed, added) in delta.fingerprints.items():
            if not removed and not added and side in stored:
                continue
            updated = stored.get(side, FingerprintSet()).changed(removed, added)
            await conn.execute(
                "INSERT INTO fingerprint_sets (rule_set, side, fps) VALUES (?, ?, ?) "
                "ON CONFLICT (rule_set, side) DO UPDATE SET fps = excluded.fps",
                (rule_set, side, updated.to_bytes()),
            )

    # --- cursors and lists -----------------------------------------------------------------

    async def get_cursor(self, rule_set: str, side: Side, stream: str) -> str | None:
        rows = await self._fetch(
            "SELECT value FROM cursors WHERE rule_set = ? AND side = ? AND stream = ?",
            (rule_set, side, stream),
        )
        return str(rows[0][0]) if rows else None

    async def set_cursor(self, rule_set: str, side: Side, stream: str, value: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO cursors (rule_set, side, stream, value, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule_set, side, stream) DO UPDATE SET "
                "value = excluded.value, updated_at = excluded.updated_at",
                (rule_set, side, stream, value, self._clock()),
            )

    async def remember_list(self, rule_set: str, side: Side, name: str, vendor_id: str) -> None:
        """Record the vendor id of a list listsync created or resolved.

        ``created_at`` is kept while the vendor id stays the same, and reset when it changes
        (the list was recreated on the vendor).
        """
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO lists (rule_set, side, name, vendor_id, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule_set, side, name) DO UPDATE SET "
                "created_at = CASE WHEN vendor_id = excluded.vendor_id THEN created_at "
                "ELSE excluded.created_at END, vendor_id = excluded.vendor_id",
                (rule_set, side, name, vendor_id, self._clock()),
            )

    async def known_lists(self, rule_set: str, side: Side) -> dict[str, str]:
        """List name -> vendor id."""
        rows = await self._fetch(
            "SELECT name, vendor_id FROM lists WHERE rule_set = ? AND side = ?", (rule_set, side)
        )
        return {str(name): str(vendor_id) for name, vendor_id in rows}

    # --- import jobs -----------------------------------------------------------------------

    async def add_job(self, rule_set: str, side: Side, vendor_job_id: str, kind: str, payload: bytes) -> int:
        """Record a submitted import job (state ``submitted``); returns its id."""
        now = self._clock()
        try:
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "INSERT INTO jobs (rule_set, side, vendor_job_id, kind, state, submitted_at, "
                    "updated_at, payload) VALUES (?, ?, ?, ?, 'submitted', ?, ?, ?)",
                    (rule_set, side, vendor_job_id, kind, now, now, payload),
                )
        except sqlite3.IntegrityError as error:
            raise ValueError(
                f"job {vendor_job_id!r} on {side} is already recorded for {rule_set!r}"
            ) from error
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def update_job(self, job_id: int, state: str, terminal: bool, detail: str | None = None) -> None:
        """Record one poll of a job; `detail` replaces the stored one only when given."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = ?, terminal = ?, detail = coalesce(?, detail), "
                "updated_at = ?, polls = polls + 1 WHERE id = ?",
                (state, terminal, detail, self._clock(), job_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no job with id {job_id}")

    async def open_jobs(self, rule_set: str | None = None) -> list[JobRecord]:
        """Jobs not yet terminal, oldest first; of every rule set when `rule_set` is None."""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE terminal = 0"
        if rule_set is None:
            rows = await self._fetch(f"{sql} ORDER BY id", ())
        else:
            rows = await self._fetch(f"{sql} AND rule_set = ? ORDER BY id", (rule_set,))
        return [_job(row) for row in rows]

    async def jobs(self, rule_set: str, *, limit: int = 100) -> list[JobRecord]:
        """The most recent jobs of `rule_set`, newest first."""
        rows = await self._fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE rule_set = ? ORDER BY id DESC LIMIT ?",
            (rule_set, limit),
        )
        return [_job(row) for row in rows]

    # --- runs and row outcomes -------------------------------------------------------------

    async def start_run(self, rule_set: str, process: str) -> int:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO runs (rule_set, process, started_at, outcome) VALUES (?, ?, ?, 'running')",
                (rule_set, process, self._clock()),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def finish_run(
        self,
        run_id: int,
        outcome: RunOutcome,
        counts: Mapping[str, int],
        detail: str | None = None,
    ) -> None:
        if outcome not in _FINISHED:
            raise ValueError(f"a run finishes as one of {sorted(_FINISHED)}, not {outcome!r}")
        encoded = msgspec.json.encode(dict(counts)).decode()
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, counts = ?, detail = ? WHERE id = ?",
                (self._clock(), outcome, encoded, detail, run_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no run with id {run_id}")

    async def record_outcomes(self, run_id: int, rows: Iterable[OutcomeRow]) -> None:
        """Record (email, op kind, outcome, reason) rows for a run, all stamped now."""
        at = self._clock()
        batch = list(rows)
        for _, _, outcome, _ in batch:
            if outcome not in _ROW_OUTCOMES:
                raise ValueError(f"a row outcome is one of {sorted(_ROW_OUTCOMES)}: {outcome!r}")
        async with self._transaction() as conn:
            found = await conn.execute_fetchall("SELECT rule_set FROM runs WHERE id = ?", (run_id,))
            owner = next(iter(found), None)
            if owner is None:
                raise KeyError(f"no run with id {run_id}")
            await conn.executemany(
                f"INSERT INTO row_outcomes ({_OUTCOME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((run_id, owner[0], e, kind, o, reason, at) for e, kind, o, reason in batch),
            )

    async def runs(self, rule_set: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        """The most recent runs, newest first."""
        if rule_set is None:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?"
            rows = await self._fetch(sql, (limit,))
        else:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE rule_set = ? ORDER BY id DESC LIMIT ?"
            rows = await self._fetch(sql, (rule_set, limit))
        return [_run(row) for row in rows]

    async def outcomes_for(self, email: str, rule_set: str | None = None) -> list[OutcomeRecord]:
        """Every recorded outcome for `email` (matched exactly), oldest first."""
        sql = f"SELECT {_OUTCOME_COLUMNS} FROM row_outcomes WHERE email = ?"
        if rule_set is None:
            rows = await self._fetch(f"{sql} ORDER BY id", (email,))
        else:
            rows = await self._fetch(f"{sql} AND rule_set = ? ORDER BY id", (email, rule_set))
        return [OutcomeRecord(*row) for row in rows]

    # --- held plans ------------------------------------------------------------------------

    async def hold_plan(
        self, rule_set: str, process: str, stops: Sequence[str], summary: Mapping[str, int], plan: bytes
    ) -> int:
        """Keep a held plan; an older one still held for the same process is superseded by it."""
        now = self._clock()
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE held_plans SET state = 'superseded', decided_at = ? "
                "WHERE rule_set = ? AND process = ? AND state = 'held'",
                (now, rule_set, process),
            )
            cursor = await conn.execute(
                "INSERT INTO held_plans (rule_set, process, held_at, state, stops, summary, plan) "
                "VALUES (?, ?, ?, 'held', ?, ?, ?)",
                (
                    rule_set,
                    process,
                    now,
                    _encode_json(list(stops)).decode(),
                    _encode_json(summary).decode(),
                    plan,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def held_plans(self, rule_set: str | None = None, *, open_only: bool = True) -> list[HeldPlan]:
        """Held plans, newest first: only those still held or approved unless `open_only` is False."""
        sql = f"SELECT {_HELD_COLUMNS} FROM held_plans WHERE (? IS NULL OR rule_set = ?)"
        if open_only:
            sql += " AND state IN ('held', 'approved')"
        rows = await self._fetch(sql + " ORDER BY id DESC", (rule_set, rule_set))
        return [_held(row) for row in rows]

    async def decide_plan(self, plan_id: int, state: HeldState, *, expected: Sequence[HeldState]) -> HeldPlan:
        """Move a held plan to `state` if it is in one of `expected`; KeyError or ValueError if not."""
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_HELD_COLUMNS} FROM held_plans WHERE id = ?", (plan_id,)
            )
            found = next(iter(rows), None)
            if found is None:
                raise KeyError(f"no held plan with id {plan_id}")
            current = _held(found)
            if current.state not in expected:
                raise ValueError(f"held plan {plan_id} is {current.state}, not {' or '.join(expected)}")
            await conn.execute(
                "UPDATE held_plans SET state = ?, decided_at = ? WHERE id = ?",
                (state, self._clock(), plan_id),
            )
        return msgspec.structs.replace(current, state=state)

    # --- call budgets ----------------------------------------------------------------------

    async def save_budget_levels(self, levels: Mapping[str, tuple[float, float]]) -> None:
        """Each account's (bucket level, wall time it was read)."""
        async with self._transaction() as conn:
            await conn.executemany(
                "INSERT INTO budget_levels (account, level, saved_at) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO UPDATE SET level = excluded.level, saved_at = excluded.saved_at",
                [(account, level, at) for account, (level, at) in levels.items()],
            )

    async def budget_levels(self) -> dict[str, tuple[float, float]]:
        rows = await self._fetch("SELECT account, level, saved_at FROM budget_levels", ())
        return {str(account): (float(level), float(at)) for account, level, at in rows}

    # --- whole reads -----------------------------------------------------------------------

    async def save_full_read(self, rule_set: str, process: str, at: float) -> None:
        """Note that a run of `process` that began at wall time `at` read both sides whole."""
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO full_reads (rule_set, process, read_at) VALUES (?, ?, ?) "
                "ON CONFLICT (rule_set, process) DO UPDATE SET read_at = excluded.read_at",
                (rule_set, process, at),
            )

    async def last_full_read(self, rule_set: str, process: str) -> float | None:
        rows = await self._fetch(
            "SELECT read_at FROM full_reads WHERE rule_set = ? AND process = ?", (rule_set, process)
        )
        return next((float(at) for (at,) in rows), None)

    async def count_refusals(
        self, rule_set: str, refused: Iterable[str], confirmed: Iterable[str], *, at_least: int
    ) -> set[str]:
        """Count one more apply in which the vendor refused an op of each of the `refused` contacts,
        forget the `confirmed` ones, and return those of `refused` refused in `at_least` applies or
        more since they were last confirmed."""
        refused, confirmed = set(refused), set(confirmed)
        query = ("SELECT email FROM refusals WHERE rule_set = ?", (rule_set,))
        # Few contacts are counted at any time, while a first sync confirms a million; and most
        # applies have nothing to count or forget, so they take no write lock here.
        if not refused and confirmed.isdisjoint(str(email) for (email,) in await self._fetch(*query)):
            return set()
        async with self._transaction() as conn:
            counted = await conn.execute_fetchall(*query)
            settled = {str(email) for (email,) in counted} & confirmed
            await conn.executemany(
                "DELETE FROM refusals WHERE rule_set = ? AND email = ?",
                ((rule_set, email) for email in sorted(settled)),
            )
            await conn.executemany(
                "INSERT INTO refusals (rule_set, email, applies) VALUES (?, ?, 1) "
                "ON CONFLICT (rule_set, email) DO UPDATE SET applies = applies + 1",
                ((rule_set, email) for email in sorted(refused)),
            )
            rows = await conn.execute_fetchall(
                "SELECT email FROM refusals WHERE rule_set = ? AND applies >= ?", (rule_set, at_least)
            )
        return {str(email) for (email,) in rows} & refused

    # --- OAuth grants ----------------------------------------------------------------------

    async def load_tokens(self, rule_set: str, side: Side, adapter: str) -> OAuthTokens | None:
        """The grant `listsync auth` stored for a rule set's side (as last refreshed), or None."""
        rows = await self._fetch(
            "SELECT access_token, refresh_token, expires_at FROM oauth_tokens "
            "WHERE rule_set = ? AND side = ? AND adapter = ?",
            (rule_set, side, adapter),
        )
        return next((OAuthTokens(str(a), str(r), float(e)) for a, r, e in rows), None)

    async def save_tokens(self, rule_set: str, side: Side, adapter: str, tokens: OAuthTokens) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO oauth_tokens (rule_set, side, adapter, access_token, refresh_token, "
                "expires_at, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (rule_set, side, adapter) DO UPDATE SET "
                "access_token = excluded.access_token, refresh_token = excluded.refresh_token, "
                "expires_at = excluded.expires_at, saved_at = excluded.saved_at",
                (rule_set, side, adapter, _Sealed(tokens.access_token),
                 _Sealed(tokens.refresh_token), tokens.expires_at, self._clock()),
            )  # fmt: skip

    # --- plumbing --------------------------------------------------------------------------

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError(f"state store {self._path} is closed")
        return self._conn

    async def _fetch(self, sql: str, parameters: Sequence[object]) -> list[Any]:
        conn = self._connection()
        async with self._lock:
            with _translated(self._path):
                return list(await conn.execute_fetchall(sql, parameters))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = self._connection()
        async with self._lock:
            with _translated(self._path):
                # BEGIN is inside the try: a caller cancelled while awaiting it (a timeout around a
                # poll) must still roll back, as the BEGIN runs on aiosqlite's thread regardless. The
                # rollback is queued behind it, and is a no-op when nothing is open.
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await conn.rollback()
                    raise


async def _prepare(conn: aiosqlite.Connection, path: Path) -> None:
    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
        mode = await cursor.fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        raise PermanentError(f"state database {path} cannot use WAL journaling (got {mode})")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("PRAGMA cache_size = -65536")
    await migrate(conn, str(path))


@contextmanager
def _translated(path: Path, *, opening: bool = False) -> Iterator[None]:
    """SQLite's errors as listsync's: a busy database is transient, a broken one permanent.

    Anything else (constraint violations, misuse) is a bug in the caller and passes unchanged.
    """
    try:
        yield
    except sqlite3.DatabaseError as error:
        code = getattr(error, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in _BUSY_CODES:
            raise TransientError(f"state database {path} is busy: {error}") from error
        if opening or primary in _BROKEN_CODES:
            raise PermanentError(f"state database {path} is unusable: {error}") from error
        raise


class _PrivateUmask:
    """Umask 077 while any store is opening; overlapping opens share one saved mask."""

    def __init__(self) -> None:
        self._depth = 0
        self._saved = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth == 0:
            self._saved = os.umask(0o077)
            os.umask(self._saved | 0o077)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                os.umask(self._saved)


_private_umask = _PrivateUmask()


class _Sealed(str):
    """A token as an SQL parameter: aiosqlite's debug log shows each statement's parameters by repr,
    and a token must reach no log. SQLite stores it as the text it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<token>'"


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _checked(fingerprint: int | None) -> int | None:
    if fingerprint is not None and not -_I64_LIMIT <= fingerprint < _I64_LIMIT:
        raise ValueError(f"fingerprint {fingerprint} is not a signed 64-bit integer")
    return fingerprint


# The generators below run on aiosqlite's thread, inside `executemany`, so encoding a million
# records does not hold up the event loop; an exception in them aborts the transaction.
def _base_rows(
    rule_set: str, chunk: Sequence[tuple[str, tuple[Record, int | None, int | None]]], version: int
) -> Iterator[tuple[object, ...]]:
    for email, (record, crm_fp, esp_fp) in chunk:
        if record.email != email:
            raise ValueError(f"record for {email!r} carries email {record.email!r}")
        yield (
            rule_set,
            email,
            record.kind,
            record.opted_out,
            _checked(crm_fp),
            _checked(esp_fp),
            _lists_text(record),
            _encode_record(record),
            version,
        )


def _lists_text(record: Record) -> str:
    return _encode_json(sorted(record.lists)).decode()


def _decode_rows(rows: list[tuple[str, bytes, int | None, int | None]]) -> dict[str, BaseRow]:
    return {email: (_decode_record(blob), crm, esp) for email, blob, crm, esp in rows}


class _Delta:
    """What a commit changes in the list counts and the fingerprint sets."""

    def __init__(self) -> None:
        self.lists: Counter[str] = Counter()
        self.fingerprints: dict[str, tuple[list[int], list[int]]] = {"crm": ([], []), "esp": ([], [])}

    def drop(self, old_rows: Iterable[Any]) -> None:
        for _, lists, crm_fp, esp_fp, _changed_in in old_rows:
            self.lists.subtract(_decode_lists(lists))
            for side, fp in (("crm", crm_fp), ("esp", esp_fp)):
                if fp is not None:
                    self.fingerprints[side][0].append(fp)

    def take(self, new_rows: Iterable[tuple[Record, int | None, int | None]]) -> None:
        for record, crm_fp, esp_fp in new_rows:
            self.lists.update(record.lists)
            for side, fp in (("crm", crm_fp), ("esp", esp_fp)):
                if fp is not None:
                    self.fingerprints[side][1].append(fp)


def _job(row: Any) -> JobRecord:
    fields = list(row)
    fields[6] = bool(fields[6])
    return JobRecord(*fields)


def _held(row: Any) -> HeldPlan:
    fields = list(row)
    fields[6] = msgspec.json.decode(fields[6], type=list[str])
    fields[7] = msgspec.json.decode(fields[7], type=dict[str, int])
    return HeldPlan(*fields)


def _run(row: Any) -> RunRecord:
    fields = list(row)
    fields[6] = msgspec.json.decode(fields[6], type=dict[str, int])
    return RunRecord(*fields)
