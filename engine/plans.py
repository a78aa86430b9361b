"""A plan is a value: the ops that would bring both sides into agreement, and what the base becomes.

It can be rendered (`engine.rendering`), saved as JSON, loaded and applied later. A saved plan carries
the tokens of the base and of both snapshots it was made from, so that applying it after either side
or the base moved is refused instead of applying stale decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal

import msgspec
from msgspec import Struct

from engine.activity_feed import ActivityState
from engine.records import Record
from engine.ruleset import ProcessName
from engine.values import Value

OpKind = Literal[
    "create_list",
    "create_field",
    "upsert_contact",
    "add_member",
    "remove_member",
    "opt_out_esp",
    "opt_out_crm",
    "update_crm",
    "mark_undeliverable_crm",
    "record_activity",
    "conflict",
    "blocked_resubscribe",
]

# The order ops are applied in: lists and fields, opt-outs, removals, upserts and memberships,
# CRM write-backs. `conflict` and `blocked_resubscribe` are shown, never executed.
OP_KINDS: tuple[OpKind, ...] = (
    "create_list",
    "create_field",
    "opt_out_esp",
    "opt_out_crm",
    "remove_member",
    "upsert_contact",
    "add_member",
    "update_crm",
    "mark_undeliverable_crm",
    "record_activity",
    "conflict",
    "blocked_resubscribe",
)
NEW_CONTACT = "new contact"  # the reason of the upsert that creates a contact on the ESP
REPORT_ONLY: frozenset[OpKind] = frozenset({"conflict", "blocked_resubscribe"})
RANK: dict[str, int] = {kind: index for index, kind in enumerate(OP_KINDS)}


class Change(Struct, frozen=True, array_like=True):
    """Old and new value of one field."""

    old: Value
    new: Value


class Op(Struct, frozen=True, omit_defaults=True):
    """One thing the plan would do.

    `email` is unset for account-level ops (create_list, create_field). `changes` holds the fields an
    upsert or CRM update writes. `side` says which side a conflict or blocked resubscribe came from.
    """

    kind: OpKind
    email: str | None = None
    list: str | None = None
    field: str | None = None
    field_type: str | None = None
    record_kind: str | None = None
    changes: dict[str, Change] = {}
    side: str | None = None
    reason: str | None = None

    @property
    def key(self) -> str:
        """What the op is about, as run history names it: its email, else its list, else its field."""
        return self.email or self.list or self.field or ""


class Tokens(Struct, frozen=True):
    """What a plan was made from: the base version and each snapshot's version."""

    base: int
    crm: str
    esp: str


class Plan(Struct, frozen=True, omit_defaults=True):
    """Ops in apply order, the base each touched record should end with, and why it may be held."""

    rule_set: str
    tokens: Tokens
    ops: tuple[Op, ...] = ()
    # email -> the record both sides agree on once every op for it is confirmed; None forgets it.
    targets: dict[str, Record | None] = {}
    # email -> (crm, esp) row fingerprints to store with the target: None when the row will not hold
    # it, reconciling.WRITTEN (2**63, outside the fingerprints' range) to take the fingerprint of
    # the row the apply writes.
    fingerprints: dict[str, tuple[int | None, int | None]] = {}
    safety_stops: tuple[str, ...] = ()
    rejections: tuple[tuple[str, str, str], ...] = ()
    # (side, email, why) of contacts a side's rules keep listsync away from (`Snapshot.left_alone`).
    left_alone: tuple[tuple[str, str, str], ...] = ()
    context: str = ""
    cursors: dict[str, str] = {}
    # Set when cut down to one process (`engine.processes`): which, and how many ops it left to others.
    process: ProcessName | None = None
    deferred: int = 0
    # The activity process's state to store once the plan is applied (`engine.activity_ops`).
    activity: ActivityState | None = None

    @property
    def actionable(self) -> tuple[Op, ...]:
        return tuple(op for op in self.ops if op.kind not in REPORT_ONLY)

    def summary(self) -> dict[str, int]:
        return summarise(self.ops)

    @property
    def has_changes(self) -> bool:
        return bool(self.ops)


def summarise(ops: Iterable[Op]) -> dict[str, int]:
    """Count of ops per kind, in apply order, omitting kinds with none."""
    counts = Counter(op.kind for op in ops)
    return {kind: counts[kind] for kind in OP_KINDS if counts[kind]}


def order_ops(ops: Iterable[Op]) -> tuple[Op, ...]:
    """Ops sorted into apply order, then by list and email so plans are stable to read and diff."""
    return tuple(sorted(ops, key=lambda op: (RANK[op.kind], op.list or "", op.email or "", op.field or "")))


def encode_plan(plan: Plan) -> bytes:
    return msgspec.json.encode(plan)


def decode_plan(data: bytes) -> Plan:
    return msgspec.json.decode(data, type=Plan)
