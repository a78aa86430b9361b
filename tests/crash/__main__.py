"""`python -m tests.crash` (what `bin/crash-test` runs): the long crash test, its figures printed.

Exit 0 when the crashed world ended as its twin with nothing lost, 1 with the problems listed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.crash.esps import ESPS
from tests.crash.running import crash_test

# Faults the crashed world's emulators add to the kills: transient errors and dropped or cut answers.
DEFAULT_FAULTS = "500=0.02,503=0.02,429=0.02,drop=0.02,malformed=0.02,retry_after=0.2"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/crash-test", description=__doc__)
    parser.add_argument(
        "--esp",
        choices=sorted(ESPS),
        default="dotdigital",
        help="the ESP beside Workbooks (default: %(default)s)",
    )
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs in all (default 200)")
    parser.add_argument("--contacts", type=int, default=1000, help="CRM people and leads (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--faults",
        default=DEFAULT_FAULTS,
        help=f"the crashed world's fault spec (default {DEFAULT_FAULTS}); '' for none; "
        "job_fail=SHARE fails a share of the ESP's bulk jobs (job_stall is not for this test: a job "
        "that never ends keeps the service from settling)",
    )
    parser.add_argument("--dir", type=Path, help="keep both worlds here (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="listsync-crash-") as temporary:
        root = args.dir or Path(temporary)
        report = crash_test(
            root,
            esp=args.esp,
            kills=args.kills,
            contacts=args.contacts,
            seed=args.seed,
            faults=args.faults or None,
        )
    for line in report.lines():
        print(line)
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print(
        "crash test passed" if not report.problems else f"crash test FAILED: {len(report.problems)} problems"
    )
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
