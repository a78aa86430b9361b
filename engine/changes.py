"""Change detection: which rows of a snapshot need decoding at all.

The base stores, per record and side, the fingerprint of the row that held exactly the agreed
values. A row whose fingerprint is among them is unchanged: it is counted and dropped, never
decoded, and the base record stands for it. Only new or changed rows are decoded and mapped, which
keeps a full plan over a million mostly unchanged rows fast. The few base records whose row was not
seen are looked up afterwards (`settle_absences`): changed, or gone. When the rules' mapping context
changed since the base was written, no fingerprint is trusted and every row is decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from engine.contract import Snapshot
from engine.records import Mapper, Record, Rejection


@dataclass
class SideView:
    """One side after change detection."""

    complete: bool
    rows: int = 0
    changed: dict[str, Record] = field(default_factory=dict)
    fingerprints: dict[str, int] = field(default_factory=dict)
    # Fingerprints of rows byte-identical to the row confirmed with the base.
    seen: set[int] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    rejections: list[Rejection] = field(default_factory=list)
    # Emails whose row could not be taken in this time: neither changed nor deleted, left alone.
    rejected: set[str] = field(default_factory=set)

    def unchanged(self, fingerprint: int | None) -> bool:
        return fingerprint is not None and fingerprint in self.seen

    def reject(self, side: str, email: str, reason: str) -> None:
        self.rejections.append(Rejection(side, email, reason))
        self.rejected.add(email)
        self.changed.pop(email, None)
        self.fingerprints.pop(email, None)


def detect(side: str, snapshot: Snapshot, known: Set[int], mapper: Mapper) -> SideView:
    """Split a snapshot into the fingerprints of unchanged rows and decoded, mapped changed records."""
    view = SideView(complete=snapshot.complete)
    seen = view.seen
    for fingerprint, payload in snapshot.rows:
        view.rows += 1
        if fingerprint in known:
            seen.add(fingerprint)
        else:
            _take(side, view, fingerprint, payload, snapshot, mapper)
    view.deleted.update(email.strip().lower() for email in snapshot.deleted)
    return view


def _take(
    side: str, view: SideView, fingerprint: int, payload: bytes, snapshot: Snapshot, mapper: Mapper
) -> None:
    try:
        row = snapshot.decode(payload)
    except ValueError as error:
        view.rejections.append(Rejection(side, _preview(payload), f"unreadable record: {error}"))
        return
    mapped = mapper.map(row)
    if mapped is None:
        return
    if isinstance(mapped, Rejection):
        view.rejections.append(mapped)
        view.rejected.add(mapped.email)
        return
    if mapped.email in view.changed:
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
