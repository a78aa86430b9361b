"""A state store opened while another is open in the same process keeps SQLite's file locks.

Found by the crash test (Constant Contact, a twin world that hung while settling): the service keeps
one store open for its budgets and opens another for every run. Opening one used to open and close
a descriptor of the database file outside SQLite, and closing any descriptor of a file drops every
POSIX lock the process holds on it, the shared lock of the store already open included. From then
on, another process that closed a connection to the database (`listsync status`, `listsync plan`, the
crash harness reading the jobs table) believed it was the last one: it checkpointed and deleted the
WAL under the service, whose later writes (bases, jobs, rotated OAuth grants) went to the deleted
file, unseen by any other process and lost at the service's next start.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import StateStore

READ_AND_CLOSE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute("SELECT level FROM budget_levels WHERE account = 'a'").fetchone()[0])
conn.close()
"""


def read_in_another_process(path: Path) -> float:
    """The budget level another process reads, closing its connection after (as `listsync status`)."""
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_CLOSE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return float(done.stdout)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_writes_of_a_long_lived_store_stay_visible_after_another_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    async with await StateStore.open(path) as budgets:  # the service's store, open all along
        await budgets.save_budget_levels({"a": (1.0, 0.0)})
        async with await StateStore.open(path) as run:  # a run's store, opened and closed
            await run.save_budget_levels({"a": (2.0, 0.0)})
        assert read_in_another_process(path) == 2.0
        await budgets.save_budget_levels({"a": (3.0, 0.0)})
        assert path.with_name("state.sqlite3-wal").exists()  # not deleted from under the open store
        assert read_in_another_process(path) == 3.0
    with sqlite3.connect(path) as conn:  # and nothing was lost once every store closed
        assert conn.execute("SELECT level FROM budget_levels WHERE account = 'a'").fetchone() == (3.0,)
