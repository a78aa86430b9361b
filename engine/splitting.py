"""Sorting both sides' rows into changed and unchanged, a large side in a worker process.

Reading, fingerprinting and sorting a million rows is CPU-bound Python and C that holds the GIL, so
threads would not help; a second process does. When a snapshot offers a picklable `load` and is
large, its split runs in a spawned worker, in parallel with the other side's; only the few changed
rows travel back. Small snapshots are split here, where a worker would cost more than it
saves.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import anyio.to_thread

from engine.changes import Split, load_and_split, split
from engine.contract import Snapshot
from engine.fingerprints import FingerprintSet

# Below this a worker's start-up (a fresh interpreter importing numpy) outweighs the parallel work.
WORKER_THRESHOLD = 32 * 2**20


async def split_sides(
    sides: Sequence[tuple[Snapshot, FingerprintSet]], trusted: bool, *, threshold: int = WORKER_THRESHOLD
) -> list[Split]:
    """`split` for every (snapshot, base fingerprints) pair, in order."""
    offload = {
        i: snapshot.load
        for i, (snapshot, _) in enumerate(sides)
        if snapshot.load is not None and snapshot.size >= threshold
    }
    if not offload:
        return [_split_here(snapshot, known, trusted) for snapshot, known in sides]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(offload), mp_context=context) as pool:
        futures = {
            i: pool.submit(load_and_split, load, sides[i][1].to_bytes(), trusted, sides[i][0].complete)
            for i, load in offload.items()
        }
        results = [
            None if i in futures else _split_here(snapshot, known, trusted)
            for i, (snapshot, known) in enumerate(sides)
        ]
        for i, future in futures.items():
            results[i] = await anyio.to_thread.run_sync(future.result)
    return [result for result in results if result is not None]


def _split_here(snapshot: Snapshot, known: FingerprintSet, trusted: bool) -> Split:
    batches = snapshot.load() if snapshot.load is not None else [snapshot.payloads]
    snapshot.payloads = ()  # the rows are not needed again: let them go
    return split(batches, known, trusted, snapshot.complete)
