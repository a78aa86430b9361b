"""Row fingerprints, and sorting a million rows into changed and unchanged in bulk.

A fingerprint is the 64-bit xxh3 digest of a row's raw payload, read as a signed little-endian
integer so SQLite stores it unchanged. Computing them for a whole snapshot and comparing them with
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


def fingerprint(payload: bytes) -> int:
    """The fingerprint of one row payload."""
    return int.from_bytes(xxhash.xxh3_64_digest(payload), "little", signed=True)


def fingerprint_all(payloads: Sequence[bytes]) -> Array:
    """Fingerprints of many payloads, in order (element i is `fingerprint(payloads[i])`)."""
    digests = b"".join(map(xxhash.xxh3_64_digest, payloads))
    return np.frombuffer(digests, dtype=_DTYPE).astype(np.int64)


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
        if not len(self._sorted) or not len(values):
            return np.zeros(len(values), dtype=bool)
        # Searching sorted values into the sorted set walks both in order: far faster than
        # looking up a million random values one by one.
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        index = np.minimum(np.searchsorted(self._sorted, ordered), len(self._sorted) - 1)
        found = np.empty(len(values), dtype=bool)
        found[order] = self._sorted[index] == ordered
        return found

    def absent_from(self, values: Array) -> list[int]:
        """The members of the set that are not among `values`."""
        if not len(self._sorted):
            return []
        if not len(values):
            return [int(v) for v in self._sorted]
        ordered = np.sort(values)
        index = np.minimum(np.searchsorted(ordered, self._sorted), len(ordered) - 1)
        return [int(v) for v in self._sorted[ordered[index] != self._sorted]]

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
