"""Cutting a plan's ops into the batches a vendor accepts.

Ops of one kind go together; membership ops are grouped by list as well, since vendors add and
remove members one list at a time. No batch is larger than the adapter's maximum or the rules'
`batch_size`, whichever is smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby

from engine.plans import RANK, Op

PER_LIST = frozenset({"add_member", "remove_member"})


def batch_size(configured: int | None, vendor_max: int) -> int:
    return max(1, min(configured or vendor_max, vendor_max))


def batches(ops: Iterable[Op], size_of: Callable[[str], int]) -> Iterator[tuple[Op, ...]]:
    """Batches of ops of one kind (and one list for membership ops), in apply order, each at most
    `size_of(kind)` long."""
    rank = RANK
    ordered = sorted(
        ops,
        key=lambda op: (rank[op.kind], op.list or "") if op.kind in PER_LIST else (rank[op.kind], ""),
    )
    for (kind, _), group in groupby(
        ordered, key=lambda op: (op.kind, op.list if op.kind in PER_LIST else None)
    ):
        yield from _chunks(tuple(group), size_of(kind))


def _chunks(ops: Sequence[Op], size: int) -> Iterator[tuple[Op, ...]]:
    for start in range(0, len(ops), size):
        yield tuple(ops[start : start + size])
