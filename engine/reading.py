"""Reading both sides' snapshots into side views, a large side in a worker process.

Reading, fingerprinting, sorting and decoding a million rows is CPU-bound work that holds the GIL,
so threads would not help; other processes do. When a snapshot offers a picklable loader and is
large, it is read in a spawned worker, in parallel with the other side; only the changed rows,
decoded and mapped, travel back. Small snapshots are read here, where a worker would cost more than
it saves, and so is one large side when both are: this process would otherwise only wait.

Each side's view is handed on as soon as it is read (`read_sides`' `then`), so looking up the base
rows it needs (`BaseLookup`) overlaps the other side's reading in its worker.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import anyio.to_thread

from engine.changes import Reading, SideView, read_side, read_side_in_worker, settle_absences
from engine.contract import Snapshot
from engine.fingerprints import FingerprintSet
from engine.records import Campaign
from engine.ruleset import RuleSet, Safety, Side
from engine.safety import check_outage
from engine.store import BaseRow, StateStore

# Below this a worker's start-up (a fresh interpreter importing numpy) outweighs the parallel work.
WORKER_THRESHOLD = 32 * 2**20


def reading_of(
    side: Side, snapshot: Snapshot, rules: RuleSet, campaigns: Sequence[Campaign], trusted: bool
) -> Reading:
    """How to read `snapshot`; its in-memory payloads are handed over and released from it."""
    load = snapshot.load if snapshot.load is not None else partial(_one_batch, snapshot.payloads)
    snapshot.payloads = ()
    return Reading(
        side,
        load,
        snapshot.decode,
        snapshot.complete,
        trusted,
        rules,
        tuple(campaigns),
        tuple(snapshot.deleted),
        snapshot.size if snapshot.load is not None else 0,
    )


async def read_sides(
    readings: Sequence[tuple[Reading, FingerprintSet]],
    *,
    threshold: int = WORKER_THRESHOLD,
    then: Callable[[Reading, SideView], Awaitable[None]] | None = None,
) -> list[SideView]:
    """`read_side` for every (reading, base fingerprints) pair, in order.

    `then` is awaited with each reading and its view, in order, as soon as the view is read and
    the sides before it are handed on; the sides read here are all read first.
    """
    large = [i for i, (reading, _) in enumerate(readings) if reading.size and reading.size >= threshold]
    offload = large[1:] if len(large) == len(readings) else large
    with ExitStack() as stack:
        futures: dict[int, Future[SideView]] = {}
        if offload:
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=len(offload), mp_context=context))
            futures = {
                i: pool.submit(read_side_in_worker, readings[i][0], readings[i][1].to_bytes())
                for i in offload
            }
        here = {i: read_side(*pair) for i, pair in enumerate(readings) if i not in futures}
        views = []
        for i, (reading, known) in enumerate(readings):
            view = here.get(i)
            if view is None:
                view = await anyio.to_thread.run_sync(futures[i].result)
                view.known = known
            if then is not None:
                await then(reading, view)
            views.append(view)
    return views


@dataclass
class BaseLookup:
    """The base rows a plan needs, looked up one side at a time as `read_sides` hands them on.

    For each side: a complete snapshot that is empty while the base is not stops here as an
    outage, before anything is looked up; the base records whose row was not seen unchanged are
    settled as changed or gone; then the base rows of the side's changed and gone contacts are
    loaded.

    The plan compared its rows with the base's fingerprints as of base `version`, and another run
    of the rule set may commit while it reads. A contact whose base that run wrote since is left
    out of this plan (`later`, taken out of the view like a row that could not be taken in): its
    row may have been compared with a fingerprint no longer stored, and the other run has just
    settled it anyway. The next run diffs it against both sides as they are then.
    """

    store: StateStore
    rule_set: str
    records: int
    safety: Safety
    version: int
    found: dict[str, BaseRow] = field(default_factory=dict)
    later: set[str] = field(default_factory=set)

    async def settle(self, reading: Reading, view: SideView) -> None:
        check_outage(reading.side, view.complete, view.rows, self.records, self.safety)
        if view.complete and self.records:
            rechecked = await self.store.emails_to_recheck(
                self.rule_set, reading.side, view.missing, version=self.version
            )
            settle_absences(view, rechecked)
        wanted = (view.changed.keys() | view.deleted) - self.found.keys()
        self.found.update(await self.store.load_base_rows(self.rule_set, wanted))
        # The other side's settle checked the emails it loaded; leaving them out of one view is enough.
        later = await self.store.emails_written_after(self.rule_set, self.version, wanted)
        view.rejected |= later
        self.later |= later

    def rows(self, emails: Iterable[str]) -> dict[str, BaseRow]:
        """The stored base rows of `emails`, each of them changed or gone on a side settled here."""
        return {email: self.found[email] for email in emails if email in self.found}


def _one_batch(payloads: Sequence[bytes]) -> list[Sequence[bytes]]:
    return [payloads]
