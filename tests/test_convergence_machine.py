"""A hypothesis state machine: people edit both sides, syncs run with failures injected.

Invariants checked after every step:
- an opt-out seen on either side is never reverted by a sync (the rules allow no resubscribe);
- once a contact's ops all went through, an opt-out from either side is on both;
- after a sync without failures, planning again finds nothing to do but parked conflicts.
"""

from __future__ import annotations

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.diffing import diff_record
from engine.records import Record
from engine.simulating import after_ops
from tests.support import LISTS, make_rules

EMAILS = [f"p{i}@example.com" for i in range(5)]
RULES = make_rules(
    fields=[
        {"crm": "first_name", "esp": "FIRSTNAME"},
        {"crm": "city", "esp": "CITY", "direction": "both"},
        {"crm": "vip", "esp": "VIP", "type": "boolean", "direction": "both", "owner": "esp"},
        {"crm": "score", "esp": "SCORE", "type": "numeric", "direction": "esp_to_crm"},
    ]
)
VALUES = {
    "FIRSTNAME": ["Ann", "Bo", None],
    "CITY": ["York", "Hull", None],
    "VIP": [True, False, None],
    "SCORE": [1, 2, None],
}

emails = st.sampled_from(EMAILS)
fields = st.sampled_from(sorted(VALUES))


class Sync(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.crm: dict[str, Record] = {}
        self.esp: dict[str, Record] = {}
        self.base: dict[str, Record] = {}
        self.clean = True  # the last sync had no failures and nothing changed since

    # --- people at work ------------------------------------------------------------------------

    @rule(
        email=emails, kind=st.sampled_from(["person", "lead"]), lists=st.sets(st.sampled_from(sorted(LISTS)))
    )
    def add_to_crm(self, email: str, kind: str, lists: set[str]) -> None:
        if email not in self.crm:
            self.crm[email] = Record(email, kind=kind, lists=frozenset(lists))
            self.clean = False

    @rule(email=emails, name=fields, data=st.data())
    def edit_crm(self, email: str, name: str, data: st.DataObject) -> None:
        self._edit(self.crm, email, name, data.draw(st.sampled_from(VALUES[name])))

    @rule(email=emails, name=fields, data=st.data())
    def edit_esp(self, email: str, name: str, data: st.DataObject) -> None:
        self._edit(self.esp, email, name, data.draw(st.sampled_from(VALUES[name])))

    @rule(email=emails, side=st.sampled_from(["crm", "esp"]))
    def opt_out(self, email: str, side: str) -> None:
        records = self.crm if side == "crm" else self.esp
        if email in records:
            records[email] = msgspec.structs.replace(
                records[email], opted_out=True, opt_out_reason="unsubscribed"
            )
            self.clean = False

    @rule(email=emails, side=st.sampled_from(["crm", "esp"]))
    def opt_back_in_by_hand(self, email: str, side: str) -> None:
        records = self.crm if side == "crm" else self.esp
        if email in records:
            records[email] = msgspec.structs.replace(records[email], opted_out=False, opt_out_reason=None)
            self.clean = False

    @rule(email=emails, side=st.sampled_from(["crm", "esp"]))
    def delete(self, email: str, side: str) -> None:
        records = self.crm if side == "crm" else self.esp
        if records.pop(email, None) is not None:
            self.clean = False

    @rule(email=emails, lists=st.sets(st.sampled_from(sorted(LISTS))))
    def change_campaigns(self, email: str, lists: set[str]) -> None:
        if email in self.crm:
            self.crm[email] = msgspec.structs.replace(self.crm[email], lists=frozenset(lists))
            self.clean = False

    def _edit(self, records: dict[str, Record], email: str, name: str, value: object) -> None:
        if email in records:
            fields = {**records[email].fields, name: value}
            records[email] = msgspec.structs.replace(records[email], fields=fields)  # type: ignore[arg-type]
            self.clean = False

    # --- the sync -----------------------------------------------------------------------------

    @rule(failing=st.sets(emails))
    def sync(self, failing: set[str]) -> None:
        before = {(name, e) for name, side in self._sides() for e, r in side.items() if r.opted_out}
        for email in sorted(self.crm.keys() | self.esp.keys() | self.base.keys()):
            result = diff_record(
                email, self.crm.get(email), self.esp.get(email), self.base.get(email), RULES, LISTS
            )
            if email in failing and result.ops:
                # Some of its ops may have gone through before the failure: apply a prefix.
                done = result.ops[: len(result.ops) // 2]
                self._apply(email, done)
                continue
            self._apply(email, result.ops)
            if result.target is None:
                self.base.pop(email, None)
            else:
                self.base[email] = result.target
        for name, side in self._sides():
            for email, record in side.items():
                # Never reverted: a side that was opted out stays opted out, failure or not.
                if (name, email) in before:
                    assert record.opted_out, f"{email}: the sync reverted the {name} opt-out"
                # Propagated: once the contact's ops all went through, both sides agree.
                elif email not in failing and any(e == email for _, e in before):
                    assert record.opted_out, f"{email}: the opt-out did not reach the {name}"
        self.clean = not failing

    def _sides(self) -> tuple[tuple[str, dict[str, Record]], ...]:
        return (("crm", self.crm), ("esp", self.esp))

    def _apply(self, email: str, ops: tuple[object, ...]) -> None:
        for side, records in (("crm", self.crm), ("esp", self.esp)):
            after = after_ops(records.get(email), email, ops, side)  # type: ignore[arg-type]
            if after is not None:
                records[email] = after

    @precondition(lambda self: self.clean)
    @invariant()
    def a_clean_sync_leaves_nothing_to_do(self) -> None:
        for email in self.crm.keys() | self.esp.keys() | self.base.keys():
            result = diff_record(
                email, self.crm.get(email), self.esp.get(email), self.base.get(email), RULES, LISTS
            )
            assert [op for op in result.ops if op.kind != "conflict"] == [], (email, result.ops)


TestSync = Sync.TestCase
TestSync.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
