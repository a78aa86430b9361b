"""The crash test from start to end: two twin worlds, one killed again and again, then compared.

The crashed world's first sync is killed while there is work in it (up to a quarter of the kills);
then, for each remaining kill, the harness makes one edit on one side (a CRM opt-out, an ESP
unsubscribe, a rename, someone taken off a campaign; a new person each time), starts the service and
kills it, mostly within seconds of an apply beginning. Then the service is left to settle. The twin
gets the same first sync and the same edits, without a kill, and settles too. `checks` judges.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash import checks
from tests.crash.esps import ESPS
from tests.crash.world import World, planned_changes


@dataclass
class Report:
    esp: str  # the ESP's name, as `--esp` takes it
    kills: int = 0
    kills_in_apply: int = 0
    edits: int = 0
    failed_runs: int = 0  # runs the service itself logged as failed (and retried): not a problem
    calls: dict[str, dict[str, int]] = field(default_factory=dict)  # world -> side -> calls
    injected: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> fault kind -> count
    jobs: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        crashed, twin = self.calls.get("crashed", {}), self.calls.get("twin", {})
        faults = {side: sum(kinds.values()) for side, kinds in self.injected.items()}
        esp = ESPS[self.esp]
        return [
            f"Workbooks and {esp.title}:",
            f"kills survived: {self.kills} (SIGKILL; {self.kills_in_apply} while an apply was under way), "
            f"{self.edits} edits between them",
            f"faults injected: {faults.get('crm', 0)} Workbooks, {faults.get('esp', 0)} {esp.title} "
            f"({self.injected})",
            "calls: "
            + ", ".join(
                f"{side} {crashed.get(side, 0)} against {twin.get(side, 0)} without crashes"
                for side in ("crm", "esp")
            ),
            f"{esp.jobs_named}: {self.jobs.get('ran', 0)} run by {esp.title}, "
            f"{self.jobs.get('recorded', 0)} in the state store and ended, "
            f"{self.jobs.get('lost_to_a_kill', 0)} submitted in the instant before a kill "
            "(run to their end by the harness, as the vendor would)",
            f"runs that failed and were retried: {self.failed_runs}",
            f"time: {self.seconds:.0f}s",
        ]


@contextmanager
def alongside(work: Callable[[], None]) -> Iterator[None]:
    """Run `work` on a thread while the block runs (the twin world keeps pace with the crashed one,
    mostly waiting on its imports); the block ends once both have, and re-raises `work`'s error."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 (handed to the main thread below)
            failed.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failed:
        raise failed[0]


def crash_test(
    root: Path,
    *,
    esp: str,
    kills: int,
    contacts: int,
    seed: int,
    faults: str | None,
    say: Callable[[str], None] = print,
) -> Report:
    started = time.monotonic()
    report = Report(esp)
    with (
        World.running(root / "twin", esp=esp, seed=seed, contacts=contacts, faults=None) as twin,
        World.running(root / "crashed", esp=esp, seed=seed, contacts=contacts, faults=faults) as crashed,
    ):
        _run(twin, crashed, kills, random.Random(seed), report, say)
        report.calls = {"crashed": crashed.calls(), "twin": twin.calls()}
        report.injected = {"crm": crashed.crm.injected(), "esp": crashed.esp.emulator.injected()}
    report.kills = len(crashed.kills)
    report.kills_in_apply = sum(kill.in_apply for kill in crashed.kills)
    report.failed_runs = crashed.failed_runs
    report.problems += crashed.findings
    report.seconds = time.monotonic() - started
    return report


def _run(
    twin: World, crashed: World, kills: int, rng: random.Random, report: Report, say: Callable[[str], None]
) -> None:
    esp = crashed.esp
    crm_was_out = checks.crm_opted_out(crashed.dumps()["crm"])
    esp_was_out = esp.unsubscribed(crashed.dumps()["esp"])
    with alongside(twin.settle):
        while len(crashed.kills) < kills // 4:
            if crashed.crash_once(rng).idle:
                break  # the first sync is done: the other kills go to the edits
        say(f"first sync: {len(crashed.kills)} kills; settling")
        crashed.settle()
    settled = crashed.dumps()
    differs = checks.difference(esp, settled, twin.dumps(), crashed.mapped)
    report.problems += [f"after the first sync: {problem}" for problem in differs]
    crm_was_out |= checks.crm_opted_out(settled["crm"])
    esp_was_out |= esp.unsubscribed(settled["esp"])

    edits = planned_changes(twin.dumps(), twin.esp, kills - len(crashed.kills))

    def twin_edits() -> None:
        for edit in edits:
            twin.change(edit)
        twin.settle()

    with alongside(twin_edits):
        for number, edit in enumerate(edits, 1):
            crashed.change(edit)
            crashed.crash_once(rng)
            if number % 10 == 0:
                say(f"edits and kills: {number} of {len(edits)}")
        say("settling")
        crashed.settle()
    crm_was_out |= {edit.email for edit in edits if edit.kind == "crm_opt_out"}
    esp_was_out |= {edit.email for edit in edits if edit.kind == "esp_unsubscribe"}
    report.edits = len(edits)

    final = crashed.dumps()
    report.problems += checks.consent_problems(esp, crm_was_out, esp_was_out, final)
    report.problems += checks.duplicate_problems(esp, final)
    in_apply = sum(kill.in_apply for kill in crashed.kills)
    problems, report.jobs = checks.job_problems(esp, final, crashed.jobs(), in_apply)
    report.problems += problems
    report.problems += checks.difference(esp, final, twin.dumps(), crashed.mapped)
    for world in (twin, crashed):
        report.problems += checks.run_problems(world.root.name, world.logged_runs, world.runs())
