"""Whole lists read by offset (``skip``/``offset``) while records may move in them.

Offset paging names a page by position. When a record before the end of the page just read leaves
the list (a contact deleted, a member removed from a book or archived, a suppression lifted) or moves
to its end (edited, in an order by date modified) before the next page is asked for, every later
record moves up a place, and the one at the page boundary is read by neither page. A full snapshot
that misses a record reads it as deleted on that side, and the engine acts on that (the Workbooks
adapter did, until it paged in order of id). Dotdigital's v2 lists and Mailchimp's lists name no
order, and offer neither an order that edits leave alone nor seek paging, so the reads here see the
shift instead of trusting that none happened:

- Every page after the first starts ``overlap`` records before the previous one ended, and must begin
  with the last records read, in the order they were read: all ``overlap`` of them, or, when records
  before them left the list, the last ``overlap - k`` (at least two). The read goes on after them, so a
  list that moved up by fewer than ``overlap - 1`` places loses nothing. A record that moved to the end
  is read there again; callers keep one per key.
- Any other page (a larger shift, one of those records gone or moved, a record inserted among them)
  starts the read over; records already given are not given again. After ``TRIES`` reads broken that
  way the read fails with TransientError and the run is retried later: it never returns a short list.
- The last records read can fool that check by moving to the end themselves, in order, while records
  before them leave: the last page then begins with them and the records between are skipped. So
  when a page ends the list, the page before it is read again and must not have changed; if it has,
  the read starts over. (That costs one call per list of more than one page. Only a list changing
  between those two calls in that same way could still fool it.)

Records added during a read may or may not be in it, as with any read; a record edited during a read
may come with its values from before the edit, so a cursor for the next read must be no later than
the moment this one began.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from engine.errors import TransientError

T = TypeVar("T")
Key = Hashable

TRIES = 3
MOST_OVERLAP = 50  # records a page of 1,000 repeats: 5% more calls on a long list


def overlap_for(page_size: int) -> int:
    """Records each page repeats of the one before: a twentieth of the page, from 2 to 50."""
    if page_size < 3:
        raise ValueError(f"a list read by overlapping pages needs pages of 3 or more, not {page_size}")
    return min(MOST_OVERLAP, max(2, page_size // 20))


def continuation(page: Sequence[Key], recent: Sequence[Key], overlap: int) -> int | None:
    """Where a page asked for ``overlap`` records before the end of the read goes on: the length of
    its longest start (2 to ``overlap`` records) that repeats the last keys read, in order; None
    when no such start shows the list moved by less than a page's overlap."""
    tail = list(recent)
    for length in range(min(overlap, len(page), len(tail)), 1, -1):
        if list(page[:length]) == tail[-length:]:
            return length
    return None


class _Stitch(Generic[T]):
    """One read's progress: the keys read last, and each next page checked against them."""

    def __init__(self, key: Callable[[T], Key], overlap: int) -> None:
        self._key = key
        self._overlap = overlap
        self._recent: deque[Key] = deque(maxlen=overlap)

    def fresh(self, page: Sequence[T]) -> Sequence[T] | None:
        """The records of ``page`` not read yet (all of the first page), or None when the page does
        not follow the read."""
        keys = [self._key(item) for item in page]
        start = 0
        if self._recent:
            found = continuation(keys, self._recent, self._overlap)
            if found is None:
                return None
            start = found
        self._recent.extend(keys[start:])
        return page[start:]


def _moving(what: str) -> TransientError:
    return TransientError(
        f"{what}: the list kept changing while it was read page by page (in {TRIES} reads, a page did "
        "not follow the one before: records were removed, moved or added between the two calls); "
        "rather than be taken with records missing, the read is given up and made again at the next run"
    )


async def read_in_turn(
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    key: Callable[[T], Key],
    *,
    page_size: int,
    what: str,
) -> AsyncIterator[T]:
    """Every record of a list, page by page as they are read (``fetch(offset, count)`` gives a page),
    until a page comes back short, or longer than asked (the endpoint ignores the count)."""
    overlap = overlap_for(page_size)
    stride = page_size - overlap
    given: Counter[Key] = Counter()
    for _ in range(TRIES):
        again = Counter(given)  # a repeated read gives nothing twice
        stitch, offset = _Stitch[T](key, overlap), 0
        before: Sequence[T] = ()
        while True:
            page = await fetch(offset, page_size)
            fresh = stitch.fresh(page)
            if fresh is None:
                break
            for item in fresh:
                name = key(item)
                if again[name] > 0:
                    again[name] -= 1
                    continue
                given[name] += 1
                yield item
            if len(page) != page_size:
                if offset and await fetch(offset - stride, page_size) != before:
                    break  # the records between may have moved past the check: read again
                return
            before = page
            offset += stride
    raise _moving(what)


async def read_at_once(
    fetch: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]],
    key: Callable[[T], Key],
    *,
    page_size: int,
    what: str,
    gather: Callable[[Iterable[Coroutine[Any, Any, object]]], Awaitable[None]],
) -> list[T]:
    """Every record of a list whose pages say its total (``fetch(offset, count)`` gives a page and
    the total): the first page, then the pages up to that total at once through ``gather``, then
    one by one for as long as the last comes back full (the list grew)."""
    for _ in range(TRIES):
        found = await _read_at_once(fetch, _Stitch(key, overlap_for(page_size)), page_size, gather)
        if found is not None:
            return found
    raise _moving(what)


async def _read_at_once(
    fetch: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]],
    stitch: _Stitch[T],
    page_size: int,
    gather: Callable[[Iterable[Coroutine[Any, Any, object]]], Awaitable[None]],
) -> list[T] | None:
    """One read of the list, or None when a page did not follow the one before."""
    first, total = await fetch(0, page_size)
    pages: dict[int, Sequence[T]] = {0: first}

    async def read(offset: int) -> None:
        pages[offset] = (await fetch(offset, page_size))[0]

    overlap = overlap_for(page_size)
    stride = page_size - overlap
    if len(first) == page_size:  # the pages that end at the total, the last one short
        await gather(read(offset) for offset in range(stride, total - overlap + 1, stride))
    found: list[T] = []
    offset = 0
    while True:
        if offset not in pages:
            await read(offset)
        fresh = stitch.fresh(pages[offset])
        if fresh is None:
            return None
        found += fresh
        if len(pages[offset]) != page_size:
            if offset and (await fetch(offset - stride, page_size))[0] != pages[offset - stride]:
                return None  # the records between may have moved past the check
            return found
        offset += stride


__all__ = ["MOST_OVERLAP", "TRIES", "continuation", "overlap_for", "read_at_once", "read_in_turn"]
