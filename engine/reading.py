"""Reading both sides' snapshots into side views, a large side in a worker process.

Reading, fingerprinting, sorting and decoding a million rows is CPU-bound work that holds the GIL,
so threads would not help; other processes do. When a snapshot offers a picklable loader and is
large, it is read in a spawned worker, in parallel with the other side; only the changed rows,
decoded and mapped, travel back. Small snapshots are read here, where a worker would cost more than
it saves.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import anyio.to_thread

from engine.changes import Reading, SideView, read_side, read_side_in_worker
from engine.contract import Snapshot
from engine.fingerprints import FingerprintSet
from engine.records import Campaign
from engine.ruleset import RuleSet

# Below this a worker's start-up (a fresh interpreter importing numpy) outweighs the parallel work.
WORKER_THRESHOLD = 32 * 2**20


def reading_of(
    side: str, snapshot: Snapshot, rules: RuleSet, campaigns: Sequence[Campaign], trusted: bool
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
    readings: Sequence[tuple[Reading, FingerprintSet]], *, threshold: int = WORKER_THRESHOLD
) -> list[SideView]:
    """`read_side` for every (reading, base fingerprints) pair, in order."""
    offload = [i for i, (reading, _) in enumerate(readings) if reading.size and reading.size >= threshold]
    if not offload:
        return [read_side(reading, known) for reading, known in readings]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(offload), mp_context=context) as pool:
        futures = {
            i: pool.submit(read_side_in_worker, readings[i][0], readings[i][1].to_bytes()) for i in offload
        }
        views = [
            None if i in futures else read_side(reading, known) for i, (reading, known) in enumerate(readings)
        ]
        for i, future in futures.items():
            view = await anyio.to_thread.run_sync(future.result)
            view.known = readings[i][1]
            views[i] = view
    return [view for view in views if view is not None]


def _one_batch(payloads: Sequence[bytes]) -> list[Sequence[bytes]]:
    return [payloads]
