"""Safety valves: refuse a plan that would empty lists or opt out crowds, and spot outages.

A vendor that answers with an empty page during an outage looks, to a naive sync, exactly like a
mass deletion. A complete snapshot that comes back empty while the base is not is therefore an
outage, and planning stops. A plan that removes or opts out more than the configured share of a
list is held before any write until a person approves it.

Only synced contacts (in the base) count as opted out: the share guards the audience listsync keeps,
and an address it never synced is not part of it. A CRM opt-out of a contact the ESP has never seen
creates that contact unsubscribed; counting those against the base would hold every first sync cut
short (by a crash, a stop or a failed batch), whose small base leaves most CRM opt-outs still to send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from engine.errors import SafetyStop
from engine.plans import Op
from engine.ruleset import Safety

ALL_CONTACTS = "all synced contacts"


def check_outage(side: str, complete: bool, rows: int, base_count: int, rules: Safety) -> None:
    """Raise `SafetyStop` when a complete snapshot is empty but the base is not."""
    if rules.outage_guard and complete and rows == 0 and base_count > 0:
        raise SafetyStop(
            [
                f"the {side.upper()} returned no records while {base_count} are synced; "
                "treating this as an outage, not a mass deletion (nothing was written)"
            ]
        )


def threshold_stops(
    ops: Iterable[Op],
    lists_of: Callable[[str], Iterable[str] | None],
    list_sizes: Mapping[str, int],
    base_count: int,
    rules: Safety,
) -> tuple[str, ...]:
    """Reasons the plan must be held: per list, removals or opt-outs above the allowed share.
    `lists_of` gives a synced contact's lists, and None for an address not synced yet."""
    removals: Counter[str] = Counter()
    opt_outs: Counter[str] = Counter()
    for op in ops:
        if op.kind == "remove_member" and op.list is not None:
            removals[op.list] += 1
        elif op.kind in ("opt_out_esp", "opt_out_crm") and op.email is not None:
            lists = lists_of(op.email)
            if lists is None:
                continue
            opt_outs[ALL_CONTACTS] += 1
            for name in lists:
                opt_outs[name] += 1
    sizes = {**list_sizes, ALL_CONTACTS: base_count}
    stops = [
        _reason(what, name, count, sizes.get(name, 0), share)
        for what, counts, share in (
            ("remove", removals, rules.max_remove_share),
            ("opt out", opt_outs, rules.max_opt_out_share),
        )
        for name, count in sorted(counts.items())
        if _over(count, sizes.get(name, 0), share, rules.min_list_size)
    ]
    return tuple(stops)


def _over(count: int, size: int, share: float, min_size: int) -> bool:
    return size >= max(min_size, 1) and count / size > share


def _reason(what: str, name: str, count: int, size: int, share: float) -> str:
    target = name if name == ALL_CONTACTS else f"list {name!r}"
    return (
        f"would {what} {count} of {size} in {target} ({count / size:.0%}), "
        f"above the {share:.0%} allowed by safety.max_{'remove' if what == 'remove' else 'opt_out'}_share"
    )
