"""Change detection: which rows of a snapshot need decoding at all.

The base stores, per record and side, the fingerprint of the row that held exactly the agreed
values. A row whose fingerprint is among them is unchanged: it is counted and dropped, never
decoded, and the base record stands for it. Only new or changed rows are decoded and mapped, which
keeps a full plan over a million mostly unchanged rows fast. The base records whose row was not
seen are looked up afterwards (`settle_absences`): changed, or gone. When the rules' mapping
context changed since the base was written, no row is taken as unchanged and every row is decoded.

The split into changed and unchanged rows (`split`) is pure and picklable, so a large side can be
split in a worker process (`load_and_split`) while the main process works on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.contract import Snapshot
from engine.fingerprints import Array, FingerprintSet, fingerprint_all
from engine.records import Mapper, Record, Rejection


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
    seen: list[Array] = []
    for payloads in batches:
        fingerprints = fingerprint_all(payloads)
        rows += len(payloads)
        seen.append(fingerprints)
        # Even in a delta, a row may repeat the confirmed one byte for byte.
        found = known.members(fingerprints) if trusted else np.zeros(len(payloads), dtype=bool)
        changed.extend((int(fingerprints[i]), payloads[int(i)]) for i in np.flatnonzero(~found))
    absent: list[int] = []
    if complete:
        absent = known.compare(np.concatenate(seen) if seen else np.empty(0, np.int64))[1]
    return Split(rows, changed, absent)


def load_and_split(
    load: Callable[[], Iterable[Sequence[bytes]]], known: bytes, trusted: bool, complete: bool
) -> Split:
    """`split` on rows read by `load`, for a worker process: only the few changed rows go back."""
    return split(load(), FingerprintSet.from_bytes(known), trusted, complete)


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
        self.present.update(int(fp) for fp in found if int(fp) not in self.missing)

    def unchanged(self, fingerprint: int | None) -> bool:
        """Whether the row confirmed with this fingerprint (looked up before) is in the snapshot."""
        return fingerprint is not None and fingerprint in self.present

    def reject(self, side: str, email: str, reason: str) -> None:
        self.rejections.append(Rejection(side, email, reason))
        self.rejected.add(email)
        self.changed.pop(email, None)
        self.fingerprints.pop(email, None)


def detect(
    side: str, snapshot: Snapshot, rows: Split, known: FingerprintSet, trusted: bool, mapper: Mapper
) -> SideView:
    """Decode and map a snapshot's changed rows, as sorted out by `split`."""
    view = SideView(complete=snapshot.complete, known=known, trusted=trusted, rows=rows.rows)
    view.missing.update(rows.absent)
    for fingerprint, payload in rows.changed:
        _take(side, view, fingerprint, payload, snapshot, mapper)
    view.deleted.update(email.strip().lower() for email in snapshot.deleted)
    return view


def _take(
    side: str, view: SideView, fingerprint: int, payload: bytes, snapshot: Snapshot, mapper: Mapper
) -> None:
    if not payload.strip():
        return
    try:
        row = snapshot.decode(payload)
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
