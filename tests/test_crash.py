"""The crash test's short version (the long one is `bin/crash-test`), for each ESP beside Workbooks:
`listsync run` as a subprocess against both emulators in their own processes, killed with SIGKILL
during its first sync and after edits on both sides, restarted each time, then left to settle. Each
must end as its twin world that never crashed, with no opt-out lost, nobody resubscribed, no
duplicate and every job accounted for (`tests/crash/checks.py`).

The three run at once, on threads: each is mostly waiting on its service and emulators (polls,
intervals, settling), so together they take little longer than one, and keep the default run short.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.crash.__main__ import DEFAULT_FAULTS
from tests.crash.esps import ESPS
from tests.crash.running import Report, crash_test

KILLS = 6


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_service_killed_again_and_again_ends_as_one_never_killed(tmp_path: Path) -> None:
    def crashed(esp: str) -> Report:
        return crash_test(
            tmp_path / esp,
            esp=esp,
            kills=KILLS,
            contacts=200,
            seed=2,
            faults=DEFAULT_FAULTS,
            say=lambda _: None,
        )

    with ThreadPoolExecutor(len(ESPS)) as pool:
        reports = dict(zip(ESPS, pool.map(crashed, ESPS), strict=True))
    for report in reports.values():
        print("\n".join(report.lines()))
    assert {esp: report.problems for esp, report in reports.items()} == {esp: [] for esp in ESPS}
    for esp, report in reports.items():
        assert report.kills == KILLS and report.kills_in_apply >= 1, esp
        assert report.jobs["recorded"] > 0, esp
