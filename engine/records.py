"""The normalised model: what both sides look like once mapped through the rules.

Adapters hand the engine `Row`s in their own vocabulary (vendor field names, campaign keys). The
engine maps each through the rules into a `Record` keyed by normalised email, with field values
keyed by the mapping's ESP field name and list memberships resolved to ESP list names. A row that
cannot be mapped becomes a `Rejection` that names the record and the reason; it is never dropped
silently and never crashes the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from msgspec import Struct

from engine.lists import ListNamer
from engine.ruleset import FieldType, RuleSet, Side
from engine.values import Value, coerce, normalise_email


class Campaign(Struct, frozen=True):
    """A CRM campaign, with the fields list-name templates may use."""

    key: str
    name: str
    status: str
    fields: dict[str, str] = {}


class Row(Struct, frozen=True, gc=False):
    """One record as an adapter read it, before mapping.

    `memberships` maps a campaign key (CRM side) or a list name (ESP side) to the member's status
    in it; an ESP adapter reports every list the contact is in with status ``"member"``.
    """

    email: object
    kind: str = "person"
    opted_out: bool = False
    opt_out_reason: str | None = None
    undeliverable: bool = False
    values: dict[str, object] = {}
    memberships: dict[str, str] = {}


class Record(Struct, frozen=True, gc=False):
    """One contact in the engine's canonical form; also the shape of the stored base."""

    email: str
    kind: str = "person"
    opted_out: bool = False
    opt_out_reason: str | None = None
    undeliverable: bool = False
    fields: dict[str, Value] = {}
    lists: frozenset[str] = frozenset()


class Rejection(Struct, frozen=True):
    """A record that could not be taken in, and why."""

    side: str
    email: str
    reason: str


class Mapper:
    """Maps rows of one side into records under a rule set and the CRM's current campaigns."""

    def __init__(self, rules: RuleSet, side: Side, campaigns: Iterable[Campaign] = ()) -> None:
        self._side = side
        self._namer = ListNamer(rules, campaigns)
        self._kinds = frozenset(rules.entities.kinds)
        # Per record kind: (ESP field name, source field on this side, type), worked out once.
        self._sources: dict[str, list[tuple[str, str, FieldType]]] = {
            kind: [
                (m.esp, m.crm_field_for(kind) if side == "crm" else m.esp, m.type)
                for m in rules.fields
                if side == "esp" or m.applies(kind)
            ]
            for kind in ("person", "lead")
        }

    @property
    def managed_lists(self) -> frozenset[str]:
        """The ESP lists whose membership this rule set decides."""
        return self._namer.managed

    def map(self, row: Row) -> Record | Rejection | None:
        """The record for `row`, a rejection, or None for a record type the rules do not sync."""
        try:
            email = normalise_email(row.email)
        except ValueError as error:
            return Rejection(self._side, repr(row.email), str(error))
        if self._side == "crm" and row.kind not in self._kinds:
            return None
        try:
            fields = self._fields(row)
        except ValueError as error:
            return Rejection(self._side, email, str(error))
        return Record(
            email=email,
            kind=row.kind,
            opted_out=row.opted_out,
            opt_out_reason=row.opt_out_reason,
            undeliverable=row.undeliverable,
            fields=fields,
            lists=self._lists(row.memberships),
        )

    def _fields(self, row: Row) -> dict[str, Value]:
        fields: dict[str, Value] = {}
        values = row.values
        for name, source, field_type in self._sources["lead" if row.kind == "lead" else "person"]:
            try:
                fields[name] = coerce(values.get(source), field_type)
            except ValueError as error:
                raise ValueError(f"field {source}: {error}") from None
        return fields

    def _lists(self, memberships: Mapping[str, str]) -> frozenset[str]:
        if self._side == "esp":
            return frozenset(name for name in memberships if name in self._namer.managed)
        return self._namer.lists_for(memberships)
