"""The four processes, and cutting a whole plan down to the part one of them applies.

A plan is always made whole, so every process sees the same three-way diff; a process then applies
only its own kinds of op. What that must never do is move the base past work left to another process:
the base of a contact is the state both sides confirmed, and its row fingerprints decide whether the
contact is looked at again. So a contact with any op left for another process is *deferred*: its
target is dropped from the cut plan, its base stays as it was, and the next plan (of any process)
finds the parts already applied agreeing on both sides. Each process reads from record cursors of
its own (`engine.planning.records_stream`): a process moves past a change once its part is done,
while the process that owes the rest has not, and still reads it.

Opt-outs belong to every process: whichever runs next carries them, so consent never waits for a
slower process's interval. The upsert that creates a contact belongs to `members` as well as to
`contacts` (a campaign member cannot enter a list before the ESP has the contact), and so do the
data fields it is created with.
"""

from __future__ import annotations

from typing import get_args

import msgspec

from engine.plans import NEW_CONTACT, REPORT_ONLY, Op, OpKind, Plan
from engine.ruleset import ProcessName

PROCESSES: tuple[ProcessName, ...] = get_args(ProcessName)

CONSENT: frozenset[OpKind] = frozenset({"opt_out_esp", "opt_out_crm"})
PROCESS_OPS: dict[ProcessName, frozenset[OpKind]] = {
    # create_field too: the contacts members creates arrive with their mapped fields.
    "members": CONSENT | {"create_list", "create_field", "add_member", "remove_member"},
    "contacts": CONSENT | {"create_field", "upsert_contact", "update_crm"},
    "activity": CONSENT | {"mark_undeliverable_crm", "record_activity"},
    "imports": frozenset(),
}
DESCRIPTIONS: dict[ProcessName, str] = {
    "members": "campaign members into ESP lists, and out of them",
    "contacts": "mapped People and Lead fields to the ESP and back",
    "activity": "opens, clicks, bounces, unsubscribes and campaign totals back to the CRM",
    "imports": "submitted ESP imports followed to their end; no plan of its own",
}


def belongs(op: Op, process: ProcessName) -> bool:
    """Whether `process` applies `op` (report-only ops are shown by every process)."""
    if op.kind in PROCESS_OPS[process] or op.kind in REPORT_ONLY:
        return True
    return process == "members" and op.kind == "upsert_contact" and op.reason == NEW_CONTACT


def for_process(plan: Plan, process: ProcessName | None) -> Plan:
    """The part of `plan` that `process` applies (all of it for None), with deferred contacts' targets
    dropped. Report-only ops (conflicts, blocked resubscribes) are shown by every process."""
    if process is None:
        return plan
    kept = tuple(op for op in plan.ops if belongs(op, process))
    left = [op for op in plan.ops if not belongs(op, process)]
    # Activity records events; it never changes what a contact's base should be.
    waiting = {op.email for op in left if op.email is not None and op.kind != "record_activity"}
    return msgspec.structs.replace(
        plan,
        process=process,
        ops=kept,
        targets={email: t for email, t in plan.targets.items() if email not in waiting},
        fingerprints={email: f for email, f in plan.fingerprints.items() if email not in waiting},
        deferred=plan.deferred + len(left),
    )
