"""Making a plan: snapshots from both sides and the base from the store, through the pure core.

Reads only. The fingerprint index decides which rows are decoded; only the candidates' base records
are loaded. A complete snapshot that is empty while the base is not stops here as an outage. The
plan records the tokens it was made from, so a saved plan can be refused later if anything moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import xxhash

from engine.activity_planning import plan_activity
from engine.contract import Snapshot
from engine.errors import StalePlanError
from engine.lists import refuse_shared_list_names
from engine.plans import Op, Plan, Tokens, order_ops
from engine.processes import PROCESS_OPS, PROCESSES, for_process
from engine.reading import BaseLookup, read_sides, reading_of
from engine.reconciling import Account, BaseRow, candidates, reconcile
from engine.records import Mapper, Rejection
from engine.rules_loading import refuse_missing_crm_fields
from engine.ruleset import ProcessName, RuleSet, Side, context_digest
from engine.safety import threshold_stops
from engine.session import SIDES, Sync
from engine.values import normalise_email

RECORDS_STREAM = "records"
OPT_OUTS = frozenset({"opt_out_esp", "opt_out_crm"})


def records_stream(process: ProcessName | None) -> str:
    """The cursor stream of a process's record reads. Each process keeps its own, so one that did its
    part of a change moves past it while the change waits for another process's part
    (`engine.processes`); a shared cursor would wait for every process at once, and under changes
    that keep coming, never move. A whole plan (no process) keeps `RECORDS_STREAM`."""
    return RECORDS_STREAM if process is None else f"{RECORDS_STREAM}.{process}"


def cursor_streams(process: ProcessName | None) -> tuple[str, ...]:
    """The streams an apply of `process` that left nothing undone moves: a whole apply did every
    process's part, so it moves theirs too."""
    if process is not None:
        return (records_stream(process),)
    return (RECORDS_STREAM, *(records_stream(p) for p in PROCESSES if PROCESS_OPS[p]))


async def make_plan(sync: Sync, *, incremental: bool = False, process: ProcessName | None = None) -> Plan:
    """The plan that brings both sides of `sync` into agreement, without writing anything; with
    `process`, the part of it that process applies (`engine.processes`).

    Each side's raw rows are released once sorted into changed and unchanged; a large side is
    read in a worker process, in parallel with the other (`engine.reading`). The ESP's activity
    feed is read only when the activity process is part of the plan.
    """
    rules, store, name = sync.rules, sync.store, sync.name
    base_version = await store.base_version(name)
    index = await store.fingerprint_index(name)
    stored_context = await store.base_context(name)
    crm_snapshot = await _snapshot(sync, "crm", incremental, process)
    refuse_missing_crm_fields(sync.loaded, crm_snapshot.columns)
    refuse_shared_list_names(rules, crm_snapshot.campaigns, sync.esp_capabilities.reserved_list_names)
    esp_snapshot = await _snapshot(sync, "esp", incremental, process)
    context = _context(rules, crm_snapshot)
    trusted = stored_context == context
    campaigns = crm_snapshot.campaigns
    lookup = BaseLookup(store, name, index.records, rules.safety, base_version)
    crm, esp = await read_sides(
        [
            (reading_of("crm", crm_snapshot, rules, campaigns, trusted), index.crm),
            (reading_of("esp", esp_snapshot, rules, campaigns, trusted), index.esp),
        ],
        then=lookup.settle,
    )
    managed = Mapper(rules, "crm", campaigns).managed_lists
    base = lookup.rows(candidates(crm, esp))
    left_alone = _left_alone(("crm", crm_snapshot), ("esp", esp_snapshot))
    result = reconcile(rules, crm, esp, base, managed, _account(sync, esp_snapshot), left_alone)
    stops = await _safety(sync, result.ops, base, index.records)
    ops = list(result.ops)
    marked = {str(op.email) for op in ops if op.kind == "mark_undeliverable_crm"}
    activity = None
    if process in (None, "activity"):
        activity = await plan_activity(sync, campaigns, marked, result.targets)
    if activity is not None:
        ops += activity.ops
    whole = Plan(
        rule_set=name,
        tokens=Tokens(base_version, crm_snapshot.version, esp_snapshot.version),
        ops=order_ops(ops),
        targets=result.targets,
        fingerprints=result.fingerprints,
        safety_stops=stops,
        rejections=tuple((r.side, r.email, r.reason) for r in result.rejections),
        left_alone=tuple((r.side, r.email, r.reason) for r in result.left_alone),
        context=context,
        cursors={  # none past a contact left to the next run (`BaseLookup.later`)
            side: snapshot.cursor
            for side, snapshot in (("crm", crm_snapshot), ("esp", esp_snapshot))
            if snapshot.cursor is not None and not lookup.later
        },
        activity=activity.state if activity is not None else None,
    )
    return for_process(whole, process)


def _left_alone(*sides: tuple[Side, Snapshot]) -> dict[str, Rejection]:
    """The contacts each side's rules keep listsync away from, by normalised email."""
    found: dict[str, Rejection] = {}
    for side, snapshot in sides:
        for email, why in snapshot.left_alone.items():
            try:
                found.setdefault(normalise_email(email), Rejection(side, email, why))
            except ValueError:
                continue  # not an address any record of the other side could have
    return found


async def _snapshot(sync: Sync, side: Side, incremental: bool, process: ProcessName | None) -> Snapshot:
    """A side's snapshot: incremental from the process's stored cursor when asked and one exists. A
    process without a cursor of its own reads from a whole apply's (or one kept before cursors were
    kept per process): every process's part was done up to it."""
    cursor = None
    if incremental:
        cursor = await sync.store.get_cursor(sync.name, side, records_stream(process))
        if cursor is None and process is not None:
            cursor = await sync.store.get_cursor(sync.name, side, RECORDS_STREAM)
    return await sync.adapter(side).snapshot(cursor)


async def _safety(
    sync: Sync, ops: Sequence[Op], base: Mapping[str, BaseRow], base_count: int
) -> tuple[str, ...]:
    """Threshold stops; list sizes are only read when the plan removes or opts out anyone."""
    if not any(op.kind == "remove_member" or op.kind in OPT_OUTS for op in ops):
        return ()
    sizes = await sync.store.list_sizes(sync.name)

    def lists_of(email: str) -> frozenset[str] | None:
        """A synced contact's lists; None for an address the base does not hold."""
        if email not in base:
            return None
        record = base[email][0]
        return record.lists if record is not None else frozenset()

    return threshold_stops(ops, lists_of, sizes, base_count, sync.rules.safety)


def _context(rules: RuleSet, crm: Snapshot) -> str:
    digest = xxhash.xxh3_128(context_digest(rules))
    digest.update(msgspec.json.encode(sorted(crm.campaigns, key=lambda c: c.key)))
    return digest.hexdigest()


def _account(sync: Sync, esp: Snapshot) -> Account:
    capabilities = sync.esp_capabilities
    limits = sync.rules.esp.limits
    field_limits = dict(capabilities.field_limits)
    for field_type in ("text", "numeric", "date", "boolean", "total"):
        configured = getattr(limits.fields, field_type)
        if configured is not None:
            field_limits[field_type] = configured
    return Account(
        lists=esp.lists,
        fields=esp.fields,
        max_lists=limits.max_lists or capabilities.max_lists,
        field_limits=field_limits,
        frozen_when_suppressed=capabilities.frozen_when_suppressed,
    )


async def check_fresh(sync: Sync, plan: Plan) -> None:
    """Refuse a saved plan when the base or either side moved since it was made."""
    if plan.rule_set != sync.name:
        raise StalePlanError(f"the plan was made for rule set {plan.rule_set!r}, not {sync.name!r}")
    moved = []
    base_version = await sync.store.base_version(sync.name)
    if base_version != plan.tokens.base:
        moved.append(f"the base was updated by another apply (version {plan.tokens.base} -> {base_version})")
    for side, token in zip(SIDES, (plan.tokens.crm, plan.tokens.esp), strict=True):
        now = await sync.adapter(side).version()
        if now != token:
            moved.append(f"the {side.upper()} data changed since the plan was made")
    if moved:
        raise StalePlanError("refusing the saved plan: " + "; ".join(moved) + ". Make a new plan.")
