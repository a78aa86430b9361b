"""Change detection: which rows of a snapshot need decoding at all.

The base stores, per record and side, the fingerprint of the row that held exactly the agreed
values. A row whose fingerprint is among them is unchanged: it is counted and dropped, never
decoded, and the base record stands for it. Only new or changed rows are decoded and mapped, which
keeps a full plan over a million mostly unchanged rows fast. The base records whose row was not
seen are looked up afterwards (`settle_absences`): changed, or gone. When the rules' mapping
context changed since the base was written, no row is taken as unchanged and every row is decoded.

Reading a side (`read_side`) needs only picklable inputs (a `Reading`), so a large side can be read
in a worker process while the main process works on the other (`engine.reading`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from engine.fingerprints import FingerprintSet, Sightings, fingerprint_all
from engine.records import Campaign, Mapper, Record, Rejection, Row
from engine.ruleset import RuleSet, Side


@dataclass(frozen=True)
class Split:
    """A snapshot's rows, sorted: how many, the changed ones, and the base rows not seen."""

    rows: int
    changed: list[tuple[int, bytes]]
    absent: list[int]


def split(batches: Iterable[Sequence[bytes]], known: FingerprintSet, trusted: bool, complete: bool) -> Split:
    """Which rows are new or changed (all of them when the base is not trusted), and, for a
    complete snapshot, which base fingerprints no row carries. Rows come in batches and only the
    changed ones are kept, so a large side is never held whole."""
    rows = 0
    changed: list[tuple[int, bytes]] = []
    sightings = Sightings(known)
    for payloads in batches:
        fingerprints = fingerprint_all(payloads)
        rows += len(payloads)
        # Even in a delta, a row may repeat the confirmed one byte for byte.
        found = sightings.members(fingerprints)
        fresh = np.flatnonzero(~found) if trusted else range(len(payloads))
        changed.extend((int(fingerprints[i]), payloads[int(i)]) for i in fresh)
    return Split(rows, changed, sightings.unseen() if complete else [])


@dataclass
class SideView:
    """One side after change detection."""

    complete: bool
    known: FingerprintSet = field(default_factory=FingerprintSet)
    trusted: bool = False
    rows: int = 0
    changed: dict[str, Record] = field(default_factory=dict)
    fingerprints: dict[str, int] = field(default_factory=dict)
    # Fingerprints of the base that no row of this snapshot carries.
    missing: set[int] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    rejections: list[Rejection] = field(default_factory=list)
    # Emails whose row could not be taken in this time: neither changed nor deleted, left alone.
    rejected: set[str] = field(default_factory=set)
    # Of the fingerprints asked about through `look_up`, those whose row is in the snapshot.
    present: set[int] = field(default_factory=set)

    def look_up(self, fingerprints: Iterable[int | None]) -> None:
        """Find out, in one pass, which of these stored fingerprints' rows are in the snapshot."""
        if not self.trusted or not self.complete:
            return
        wanted = np.fromiter((fp for fp in fingerprints if fp is not None), dtype=np.int64)
        found = wanted[self.known.members(wanted)]
        self.present.update(set(found.tolist()) - self.missing)

    def unchanged(self, fingerprint: int | None) -> bool:
        """Whether the row confirmed with this fingerprint (looked up before) is in the snapshot."""
        return fingerprint is not None and fingerprint in self.present

    def reject(self, side: str, email: str, reason: str) -> None:
        self.rejections.append(Rejection(side, email, reason))
        self.rejected.add(email)
        self.changed.pop(email, None)
        self.fingerprints.pop(email, None)


@dataclass(frozen=True)
class Reading:
    """Everything needed to read one side and sort its rows; picklable, for a worker process.

    `load` yields the rows' payloads in batches. `size` (bytes, 0 when unknown) tells whether a
    worker process would pay off.
    """

    side: Side
    load: Callable[[], Iterable[Sequence[bytes]]]
    decode: Callable[[bytes], Row]
    complete: bool
    trusted: bool
    rules: RuleSet
    campaigns: Sequence[Campaign]
    deleted: Sequence[str] = ()
    size: int = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside, for bulk work on changed rows and contacts.

    Such work makes tens of thousands of objects, none in a cycle, and would set off a collection
    every few hundred of them, each walking the whole heap: in a process that has a full plan's
    modules and data loaded, that cost about a sixth of the time of reading a side or diffing its
    changes. Collection resumes (if it was on) when the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@gc_paused()
def read_side(reading: Reading, known: FingerprintSet) -> SideView:
    """Sort a side's rows against the base's fingerprints, then decode and map the changed ones."""
    rows = split(reading.load(), known, reading.trusted, reading.complete)
    view = SideView(complete=reading.complete, known=known, trusted=reading.trusted, rows=rows.rows)
    view.missing.update(rows.absent)
    mapper = Mapper(reading.rules, reading.side, reading.campaigns)
    for fingerprint, payload in rows.changed:
        _take(reading.side, view, fingerprint, payload, reading.decode, mapper)
    view.deleted.update(email.strip().lower() for email in reading.deleted)
    return view


def read_side_in_worker(reading: Reading, known: bytes) -> SideView:
    """`read_side` for a worker process: the base's fingerprints come and go as bytes."""
    view = read_side(reading, FingerprintSet.from_bytes(known))
    view.known = FingerprintSet()  # the caller has it: do not send it back
    return view


def _take(
    side: str,
    view: SideView,
    fingerprint: int,
    payload: bytes,
    decode: Callable[[bytes], Row],
    mapper: Mapper,
) -> None:
    if not payload.strip():
        return
    try:
        row = decode(payload)
    except ValueError as error:
        view.rejections.append(Rejection(side, _preview(payload), f"unreadable record: {error}"))
        return
    mapped = mapper.map(row)
    if mapped is None:
        # A record type the rules do not sync: as far as this sync goes, the row is not there.
        view.missing.add(fingerprint)
        return
    if isinstance(mapped, Rejection):
        view.rejections.append(mapped)
        view.rejected.add(mapped.email)
        return
    if mapped.email in view.changed or mapped.email in view.rejected:
        view.reject(side, mapped.email, "duplicate email: another record has it too")
        return
    view.changed[mapped.email] = mapped
    view.fingerprints[mapped.email] = fingerprint


def settle_absences(view: SideView, rechecked: Iterable[str]) -> None:
    """For a complete snapshot: base records whose row was not seen unchanged, and that did not
    come back changed or rejected, are gone from this side."""
    if view.complete:
        view.deleted.update(e for e in rechecked if e not in view.changed and e not in view.rejected)


def _preview(payload: bytes) -> str:
    text = payload[:60].decode("utf-8", "replace")
    return text + ("…" if len(payload) > 60 else "")
