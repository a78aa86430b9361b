"""The state database's schema, as an append-only list of forward migrations.

`PRAGMA user_version` holds the number of steps applied. `MIGRATIONS[n]` takes a database from
version ``n`` to ``n + 1``; a step, once released, is never edited, only followed by new ones, so
that every existing state file can be brought forward. `migrate` applies the missing steps in one
transaction and refuses a database written by a newer listsync rather than guessing at it.

Every table carries a ``rule_set`` column because several rule sets may share one state file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import aiosqlite
import anyio

from engine.errors import PermanentError

# v1: the base (last state both sides confirmed) and what incremental sync needs to resume.
_V1 = """
CREATE TABLE base (
    rule_set  TEXT    NOT NULL,
    email     TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    opted_out INTEGER NOT NULL CHECK (opted_out IN (0, 1)),
    crm_fp    INTEGER,            -- unsigned 64-bit fingerprint stored as its signed twin
    esp_fp    INTEGER,
    lists     TEXT    NOT NULL DEFAULT '[]',  -- the record's lists, sorted JSON array
    record    BLOB    NOT NULL,   -- msgpack of engine.records.Record
    PRIMARY KEY (rule_set, email)
-- Clustered by (rule_set, email): reading a rule set's whole base is one range scan.
) WITHOUT ROWID;

-- The fingerprint indexes let a plan find the base rows whose side row changed or vanished
-- without reading every email.
CREATE INDEX base_by_crm_fp ON base (rule_set, crm_fp);
CREATE INDEX base_by_esp_fp ON base (rule_set, esp_fp);

-- Members per list of the base, kept in step with `base.lists` by the transaction that writes the
-- base, so safety thresholds can read a list's size without counting it.
-- Each side's fingerprints of the base, as one sorted array of little-endian int64: loading a
-- million of them is one read, not a million rows. Kept in step with `base` by `commit_base`.
CREATE TABLE fingerprint_sets (
    rule_set TEXT NOT NULL,
    side     TEXT NOT NULL CHECK (side IN ('crm', 'esp')),
    fps      BLOB NOT NULL,
    PRIMARY KEY (rule_set, side)
) WITHOUT ROWID;

CREATE TABLE list_counts (
    rule_set  TEXT    NOT NULL,
    list_name TEXT    NOT NULL,
    members   INTEGER NOT NULL,
    PRIMARY KEY (rule_set, list_name)
) WITHOUT ROWID;

CREATE TABLE base_meta (
    rule_set TEXT    NOT NULL PRIMARY KEY,
    version  INTEGER NOT NULL,
    context  TEXT    NOT NULL,
    records  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE cursors (
    rule_set   TEXT NOT NULL,
    side       TEXT NOT NULL CHECK (side IN ('crm', 'esp')),
    stream     TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (rule_set, side, stream)
) WITHOUT ROWID;

CREATE TABLE lists (
    rule_set   TEXT NOT NULL,
    side       TEXT NOT NULL CHECK (side IN ('crm', 'esp')),
    name       TEXT NOT NULL,
    vendor_id  TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (rule_set, side, name)
) WITHOUT ROWID;
"""

# v2: import-job tracking and run history with row-level outcomes.
_V2 = """
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    rule_set      TEXT    NOT NULL,
    side          TEXT    NOT NULL CHECK (side IN ('crm', 'esp')),
    vendor_job_id TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    terminal      INTEGER NOT NULL DEFAULT 0 CHECK (terminal IN (0, 1)),
    submitted_at  REAL    NOT NULL,
    updated_at    REAL    NOT NULL,
    polls         INTEGER NOT NULL DEFAULT 0,
    detail        TEXT,
    payload       BLOB    NOT NULL,
    UNIQUE (rule_set, side, vendor_job_id)
);
CREATE INDEX jobs_by_rule_set ON jobs (rule_set, id);
CREATE INDEX jobs_open ON jobs (id) WHERE terminal = 0;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    rule_set    TEXT NOT NULL,
    process     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'held')),
    counts      TEXT NOT NULL DEFAULT '{}',   -- JSON object: name -> count
    detail      TEXT,
    UNIQUE (id, rule_set)                     -- target of row_outcomes' foreign key
);
CREATE INDEX runs_by_rule_set ON runs (rule_set, id);

-- rule_set is copied from the run so that history can be searched by (email, rule set) through
-- one index; the composite foreign key keeps the copy honest.
CREATE TABLE row_outcomes (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER NOT NULL,
    rule_set TEXT    NOT NULL,
    email    TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    outcome  TEXT    NOT NULL CHECK (outcome IN ('done', 'rejected', 'pending')),
    reason   TEXT,
    at       REAL    NOT NULL,
    FOREIGN KEY (run_id, rule_set) REFERENCES runs (id, rule_set) ON DELETE CASCADE
);
CREATE INDEX row_outcomes_by_email ON row_outcomes (email, rule_set, id);
CREATE INDEX row_outcomes_by_run ON row_outcomes (run_id, rule_set);
"""

# v3: the service's plans held by a safety threshold, and its accounts' call budgets.
_V3 = """
CREATE TABLE held_plans (
    id         INTEGER PRIMARY KEY,
    rule_set   TEXT NOT NULL,
    process    TEXT NOT NULL,
    held_at    REAL NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('held', 'approved', 'discarded', 'applied', 'superseded')),
    decided_at REAL,
    stops      TEXT NOT NULL,   -- JSON array of the safety stops' reasons
    summary    TEXT NOT NULL,   -- JSON object: op kind -> count
    plan       BLOB NOT NULL    -- engine.plans.encode_plan
);
CREATE INDEX held_plans_open ON held_plans (rule_set, process) WHERE state IN ('held', 'approved');

-- One row per vendor account: the bucket's level when last saved, so a restart keeps its count.
CREATE TABLE budget_levels (
    account  TEXT NOT NULL PRIMARY KEY,
    level    REAL NOT NULL,
    saved_at REAL NOT NULL
) WITHOUT ROWID;
"""

# v4: OAuth2 grants (`listsync auth`), one per rule set side. Not per vendor account: a vendor that
# rotates refresh tokens retires the old one at each refresh, so two rule sets sharing one grant would
# strand each other; each side authorises, and refreshes, its own.
_V4 = """
CREATE TABLE oauth_tokens (
    rule_set      TEXT NOT NULL,
    side          TEXT NOT NULL CHECK (side IN ('crm', 'esp')),
    adapter       TEXT NOT NULL,
    access_token  TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    expires_at    REAL NOT NULL,
    saved_at      REAL NOT NULL,
    PRIMARY KEY (rule_set, side, adapter)
) WITHOUT ROWID;
"""

# v5: the base version that last wrote each base row, so that runs of one rule set can apply at
# once: a run writes a contact's base only if no other run wrote it since this run's plan was made
# (`StateStore.commit_base(since=...)`). Rows from before v5 count as written at version 0.
_V5 = """
ALTER TABLE base ADD COLUMN changed_in INTEGER NOT NULL DEFAULT 0;
"""

# v6: when the service last read a process's sides whole (`service.full_read_every`), so that a
# restart reads only what changed since its cursors instead of everything again.
_V6 = """
CREATE TABLE full_reads (
    rule_set TEXT NOT NULL,
    process  TEXT NOT NULL,
    read_at  REAL NOT NULL,
    PRIMARY KEY (rule_set, process)
) WITHOUT ROWID;
"""

# v7: per contact, how many applies the vendor refused its ops in since it was last confirmed, so that
# a refusal that keeps coming stops holding the record cursors (`engine.applying`).
_V7 = """
CREATE TABLE refusals (
    rule_set TEXT    NOT NULL,
    email    TEXT    NOT NULL,
    applies  INTEGER NOT NULL,
    PRIMARY KEY (rule_set, email)
) WITHOUT ROWID;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of `script`, in order.

    `sqlite3.Connection.executescript` commits any open transaction first, so steps are run
    statement by statement inside our own transaction instead.
    """
    start = 0
    for end, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : end + 1]):
            statement = script[start : end + 1].strip()
            start = end + 1
            if statement != ";":
                yield statement
    if script[start:].strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {script[start:]!r}")


async def migrate(conn: aiosqlite.Connection, path: str) -> int:
    """Bring the database on `conn` to `SCHEMA_VERSION`; returns the version it was at.

    The version is read again under the write lock, so two processes opening the same old file at
    once migrate it once. `conn` must be in autocommit mode (``isolation_level=None``).
    """
    found = await _version(conn)
    _refuse_future(found, path)
    if found == SCHEMA_VERSION:
        return found
    await conn.execute("BEGIN IMMEDIATE")
    try:
        found = await _version(conn)
        _refuse_future(found, path)
        for step in MIGRATIONS[found:]:
            for statement in statements(step):
                await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        await conn.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.rollback()
        raise
    return found


async def _version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def _refuse_future(found: int, path: str) -> None:
    if found > SCHEMA_VERSION:
        raise PermanentError(
            f"state database {path} has schema version {found}, newer than this listsync "
            f"understands ({SCHEMA_VERSION}); upgrade listsync or point it at another state path"
        )
