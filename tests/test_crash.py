"""The crash test's short version (the long one is `bin/crash-test`): `listsync run` as a subprocess
against both emulators in their own processes, killed with SIGKILL during its first sync and
after edits on both sides, restarted each time, then left to settle. It must end as its twin world
that never crashed, with no opt-out lost, nobody resubscribed, no duplicate and every job
accounted for (`tests/crash/checks.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash.__main__ import DEFAULT_FAULTS
from tests.crash.running import crash_test


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_service_killed_again_and_again_ends_as_one_never_killed(tmp_path: Path) -> None:
    report = crash_test(tmp_path, kills=6, contacts=200, seed=2, faults=DEFAULT_FAULTS, say=lambda _: None)
    print("\n".join(report.lines()))
    assert report.problems == []
    assert report.kills == 6 and report.kills_in_apply >= 1
    assert report.jobs["recorded"] > 0
