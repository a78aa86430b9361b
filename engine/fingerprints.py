"""Row fingerprints, and sorting a million rows into changed and unchanged in bulk.

A fingerprint is the 64-bit xxh3 digest of a row's raw payload, as a signed integer (the same bits)
so SQLite stores it unchanged. Computing them for a whole snapshot and comparing them with
the base's happens in C (xxhash, numpy): a Python loop over a million rows would cost more than
everything else a plan does. The base's fingerprints of one side are kept as one sorted array.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import xxhash

Array = npt.NDArray[np.int64]
_DTYPE = np.dtype("<i8")
_SIGN, _WRAP = 1 << 63, 1 << 64


def fingerprint(payload: bytes) -> int:
    """The fingerprint of one row payload."""
    value = xxhash.xxh3_64_intdigest(payload)
    return value - _WRAP if value >= _SIGN else value


def fingerprint_all(payloads: Sequence[bytes]) -> Array:
    """Fingerprints of many payloads, in order (element i is `fingerprint(payloads[i])`)."""
    digests = np.fromiter(map(xxhash.xxh3_64_intdigest, payloads), dtype=np.uint64, count=len(payloads))
    return digests.view(np.int64)


class FingerprintSet:
    """A sorted set of fingerprints: one side's rows as confirmed with the base."""

    __slots__ = ("_sorted",)

    def __init__(self, values: Array | None = None) -> None:
        self._sorted: Array = np.unique(values) if values is not None else np.empty(0, np.int64)

    @classmethod
    def from_bytes(cls, blob: bytes) -> FingerprintSet:
        instance = cls()
        instance._sorted = np.frombuffer(blob, dtype=_DTYPE).astype(np.int64)
        return instance

    def to_bytes(self) -> bytes:
        return self._sorted.astype(_DTYPE).tobytes()

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int) or not len(self._sorted):
            return False
        index = int(np.searchsorted(self._sorted, value))
        return index < len(self._sorted) and int(self._sorted[index]) == value

    def members(self, values: Array) -> npt.NDArray[np.bool_]:
        """For each of `values`, whether it is in the set."""
        return self._search(values)[0]

    def _search(self, values: Array) -> tuple[npt.NDArray[np.bool_], Array]:
        """Membership of each of `values`, and the positions in the set of those found."""
        if not len(self._sorted) or not len(values):
            return np.zeros(len(values), dtype=bool), np.empty(0, np.intp)
        # Searching sorted values into the sorted set walks both in order: far faster than
        # looking up a million random values one by one.
        order = np.argsort(values)
        ordered = values[order]
        index = np.minimum(np.searchsorted(self._sorted, ordered), len(self._sorted) - 1)
        hit = self._sorted[index] == ordered
        found = np.empty(len(values), dtype=bool)
        found[order] = hit
        return found, index[hit]

    def changed(self, removed: Iterable[int], added: Iterable[int]) -> FingerprintSet:
        """A new set without `removed` and with `added`."""
        gone = np.fromiter(removed, dtype=np.int64)
        new = np.fromiter(added, dtype=np.int64)
        kept = self._sorted
        if len(gone):
            kept = kept[~FingerprintSet(gone).members(kept)]
        result = FingerprintSet()
        result._sorted = np.unique(np.concatenate([kept, new])) if len(new) else kept
        return result


class Sightings:
    """Which members of a set a snapshot's rows carried, batch by batch.

    The members never seen are the base rows that changed or are gone; marking them as the batches
    pass spares holding (and searching again) the fingerprints of a million rows.
    """

    __slots__ = ("_known", "_seen")

    def __init__(self, known: FingerprintSet) -> None:
        self._known = known
        self._seen = np.zeros(len(known), dtype=bool)

    def members(self, values: Array) -> npt.NDArray[np.bool_]:
        """`FingerprintSet.members`, remembering which members were found."""
        found, positions = self._known._search(values)
        self._seen[positions] = True
        return found

    def unseen(self) -> list[int]:
        """The members no batch carried."""
        return [int(v) for v in self._known._sorted[~self._seen]]
