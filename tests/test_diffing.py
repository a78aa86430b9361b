"""The three-way diff, one case per rule of DESIGN.md, plus hypothesis properties."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from engine.consent import decide
from engine.diffing import _fields, diff_record, in_step, partly_confirmed
from engine.plans import NEW_CONTACT, REPORT_ONLY, Change, Op
from engine.reconciling import agrees
from engine.records import Record
from engine.ruleset import RuleSet
from engine.simulating import ESP_OPS, after_ops
from tests.support import LISTS, applied, diff, kinds, make_rules, record

RULES = make_rules()


def test_identical_sides_with_a_base_give_no_ops() -> None:
    same = record(fields={"FIRSTNAME": "Jo", "CITY": "York", "SCORE": 3}, lists=frozenset({"Spring"}))
    assert diff(same, same, same, RULES).ops == ()


def test_a_crm_change_propagates_to_the_esp() -> None:
    base = record(fields={"FIRSTNAME": "Jo", "CITY": "York", "SCORE": 3})
    crm = record(fields={"FIRSTNAME": "Joanna", "CITY": "York", "SCORE": 3})
    result = diff(crm, base, base, RULES)
    assert kinds(result) == ["upsert_contact"]
    assert result.ops[0].changes == {"FIRSTNAME": Change("Jo", "Joanna")}
    assert result.target is not None and result.target.fields["FIRSTNAME"] == "Joanna"


def test_an_esp_change_to_a_crm_owned_field_is_overwritten() -> None:
    base = record(fields={"FIRSTNAME": "Jo", "CITY": None, "SCORE": None})
    esp = record(fields={"FIRSTNAME": "Joe", "CITY": None, "SCORE": None})
    result = diff(base, esp, base, RULES)
    assert result.ops[0].kind == "upsert_contact"
    assert result.ops[0].changes == {"FIRSTNAME": Change("Joe", "Jo")}


def test_an_esp_owned_field_flows_to_the_crm() -> None:
    base = record(fields={"FIRSTNAME": None, "CITY": None, "SCORE": 1})
    esp = record(fields={"FIRSTNAME": None, "CITY": None, "SCORE": 9})
    result = diff(base, esp, base, RULES)
    assert kinds(result) == ["update_crm"]
    assert result.ops[0].changes == {"SCORE": Change(1, 9)}


def test_equal_changes_on_both_sides_converge_silently() -> None:
    base = record(fields={"FIRSTNAME": None, "CITY": "York", "SCORE": None})
    moved = record(fields={"FIRSTNAME": None, "CITY": "Leeds", "SCORE": None})
    result = diff(moved, moved, base, RULES)
    assert result.ops == ()
    assert result.target is not None and result.target.fields["CITY"] == "Leeds"


def test_different_changes_go_to_the_owner() -> None:
    base = record(fields={"FIRSTNAME": None, "CITY": "York", "SCORE": None})
    crm = record(fields={"FIRSTNAME": None, "CITY": "Leeds", "SCORE": None})
    esp = record(fields={"FIRSTNAME": None, "CITY": "Hull", "SCORE": None})
    result = diff(crm, esp, base, RULES)
    assert kinds(result) == ["upsert_contact"]
    assert result.ops[0].changes == {"CITY": Change("Hull", "Leeds")}


def test_different_changes_without_an_owner_are_parked_as_a_conflict() -> None:
    rules = make_rules(fields=[{"crm": "city", "esp": "CITY", "direction": "both"}])
    base = record(fields={"CITY": "York"})
    result = diff(record(fields={"CITY": "Leeds"}), record(fields={"CITY": "Hull"}), base, rules)
    assert kinds(result) == ["conflict"]
    assert result.ops[0].changes == {"CITY": Change("Leeds", "Hull")}
    assert result.target is not None and result.target.fields["CITY"] == "York"


def test_a_new_crm_contact_is_created_with_its_lists() -> None:
    crm = record(fields={"FIRSTNAME": "Jo", "CITY": "York", "SCORE": None}, lists=frozenset({"Spring"}))
    result = diff(crm, None, None, RULES)
    assert kinds(result) == ["upsert_contact", "add_member"]
    assert result.ops[0].changes == {"FIRSTNAME": Change(None, "Jo"), "CITY": Change(None, "York")}


def test_an_opted_out_new_crm_contact_is_created_opted_out() -> None:
    result = diff(record(opted_out=True), None, None, RULES)
    assert sorted(kinds(result)) == ["opt_out_esp", "upsert_contact"]


def test_a_contact_deleted_from_the_esp_is_recreated_with_its_opt_out() -> None:
    base = record(opted_out=True, opt_out_reason="unsubscribed", lists=frozenset({"Spring"}))
    result = diff(base, None, base, RULES)
    assert sorted(kinds(result)) == ["add_member", "opt_out_esp", "upsert_contact"]


def test_a_contact_only_in_the_esp_is_left_alone() -> None:
    result = diff(None, record(lists=frozenset({"Spring"})), None, RULES)
    assert result.ops == () and result.target is None and not result.changed


def test_a_contact_deleted_in_the_crm_leaves_managed_lists_and_is_forgotten() -> None:
    base = record(lists=frozenset({"Spring"}))
    esp = record(lists=frozenset({"Spring", "Unmanaged"}))
    result = diff(None, esp, base, RULES)
    assert [(op.kind, op.list) for op in result.ops] == [("remove_member", "Spring")]
    assert result.target is None and result.changed


def test_a_deleted_opted_out_contact_stays_as_a_tombstone() -> None:
    base = record(opted_out=True, opt_out_reason="unsubscribed", fields={"FIRSTNAME": "Jo"})
    result = diff(None, None, base, RULES)
    assert result.target is not None and result.target.opted_out
    # If the contact comes back in the CRM, opted in, the opt-out is still enforced.
    back = diff(record(fields={"FIRSTNAME": "Jo"}), None, result.target, RULES)
    assert "opt_out_esp" in kinds(back)
    assert back.target is not None and back.target.opted_out


def test_a_member_removed_from_the_campaign_leaves_the_list() -> None:
    base = record(lists=frozenset({"Spring", "Webinar"}))
    crm = record(lists=frozenset({"Webinar"}))
    result = diff(crm, base, base, RULES)
    assert [(op.kind, op.list) for op in result.ops] == [("remove_member", "Spring")]


def test_crm_opt_out_propagates_to_the_esp() -> None:
    base = record()
    result = diff(record(opted_out=True), base, base, RULES)
    assert kinds(result) == ["opt_out_esp"]


def test_esp_opt_out_propagates_to_the_crm() -> None:
    base = record()
    result = diff(base, record(opted_out=True, opt_out_reason="unsubscribed"), base, RULES)
    assert kinds(result) == ["opt_out_crm"]
    assert result.target is not None and result.target.opt_out_reason == "unsubscribed"


def test_a_crm_resubscribe_is_blocked_and_the_opt_out_restored() -> None:
    base = record(opted_out=True, opt_out_reason="unsubscribed")
    result = diff(record(opted_out=False), base, base, RULES)
    assert sorted(kinds(result)) == ["blocked_resubscribe", "opt_out_crm"]
    assert result.target is not None and result.target.opted_out


def test_a_crm_resubscribe_is_allowed_only_for_permitted_reasons() -> None:
    rules = make_rules(consent={"resubscribe": "from_crm", "resubscribe_reasons": ["admin"]})
    admin = record(opted_out=True, opt_out_reason="admin")
    allowed = diff(record(opted_out=False), admin, admin, rules)
    assert kinds(allowed) == ["upsert_contact"]
    assert allowed.ops[0].changes == {"opted_out": Change(True, False)}
    own = record(opted_out=True, opt_out_reason="unsubscribed")
    assert "blocked_resubscribe" in kinds(diff(record(opted_out=False), own, own, rules))


def test_an_opt_out_re_asserted_by_listsync_keeps_why_the_contact_opted_out() -> None:
    # Someone unsubscribed themselves; their ESP contact was deleted and made again by listsync with
    # the opt-out re-asserted, which the ESP reads back as an admin opt-out. The CRM opting them back
    # in must still be refused under a rule that lets the CRM reverse only admin and CRM opt-outs.
    rules = make_rules(consent={"resubscribe": "from_crm"})
    own = record(opted_out=True, opt_out_reason="unsubscribed", lists=frozenset({"Spring"}))
    remade = diff(own, None, own, rules)
    assert "opt_out_esp" in kinds(remade) and remade.target is not None
    read_back = replace(own, opt_out_reason="admin")
    settled = diff(own, read_back, remade.target, rules)
    assert settled.target is not None and settled.target.opt_out_reason == "unsubscribed"
    assert not settled.changed
    opted_in = diff(record(opted_out=False, lists=frozenset({"Spring"})), read_back, settled.target, rules)
    assert "blocked_resubscribe" in kinds(opted_in)
    # A reason that forbids more, read later, replaces one that allowed a CRM reversal.
    admin = record(opted_out=True, opt_out_reason="admin")
    complained = diff(admin, replace(admin, opt_out_reason="complaint"), admin, rules)
    assert complained.target is not None and complained.target.opt_out_reason == "complaint"
    gone = diff(None, replace(admin, opt_out_reason="unsubscribed"), own, rules)
    assert gone.target is not None and gone.target.opt_out_reason == "unsubscribed"


def test_an_esp_resubscribe_flows_to_the_crm_when_allowed() -> None:
    rules = make_rules(consent={"resubscribe": "from_esp"})
    base = record(opted_out=True, opt_out_reason="unsubscribed")
    result = diff(base, record(opted_out=False), base, rules)
    assert kinds(result) == ["update_crm"]
    assert result.ops[0].changes == {"opted_out": Change(True, False)}


def test_a_hard_bounce_marks_the_crm_undeliverable() -> None:
    base = record()
    result = diff(base, record(undeliverable=True), base, RULES)
    assert kinds(result) == ["mark_undeliverable_crm"]


def test_a_person_only_field_is_not_synced_for_leads() -> None:
    rules = make_rules(fields=[{"crm": "company", "esp": "COMPANY", "applies_to": "lead"}])
    crm = record(kind="person", fields={})
    esp = record(fields={"COMPANY": "Acme"})
    assert diff(crm, esp, crm, rules).ops == ()


def test_a_contact_made_again_by_its_opt_out_alone_gets_its_values_written_not_cleared() -> None:
    """Deleted from the ESP: its opt-out made it again there, but the upsert with its values failed.
    The ESP then holds none of them; the base must not say it held them, or the diff would read
    the ESP as clearing them and clear the CRM too."""
    rules = _unowned("never")
    fields = {"FIRSTNAME": "Jo", "CITY": "York", "SCORE": None}
    base = record(opted_out=True, opt_out_reason="unsubscribed", fields=fields)
    crm = replace(base, opt_out_reason=None)
    result = diff(crm, None, base, rules)
    assert kinds(result) == ["opt_out_esp", "upsert_contact"] and result.target is not None
    failed = [op for op in result.ops if op.kind == "upsert_contact"]
    esp = after_ops(None, crm.email, [result.ops[0]], "esp")
    partial = partly_confirmed(result.target, base, failed, esp_written=True)
    again = diff(crm, esp, partial, rules)
    assert kinds(again) == ["upsert_contact"]
    assert again.ops[0].changes == {"FIRSTNAME": Change(None, "Jo"), "CITY": Change(None, "York")}
    # Nothing reached the ESP: the base is kept, and the contact is made again from it.
    assert partly_confirmed(result.target, base, result.ops, esp_written=False) == base
    assert partly_confirmed(result.target, None, result.ops, esp_written=False) is None


# --- properties -------------------------------------------------------------------------------

TEXT = st.sampled_from([None, "a", "b", "c"])
NUMBER = st.sampled_from([None, 1, 2, 2.5])
REASONS = st.sampled_from([None, "unsubscribed", "admin", "crm", "complaint"])


@st.composite
def records(draw: Any, email: str = "p@example.com") -> Record:
    opted_out = draw(st.booleans())
    return Record(
        email,
        kind=draw(st.sampled_from(["person", "lead"])),
        opted_out=opted_out,
        opt_out_reason=draw(REASONS) if opted_out else None,
        undeliverable=draw(st.booleans()),
        fields={"FIRSTNAME": draw(TEXT), "CITY": draw(TEXT), "SCORE": draw(NUMBER)},
        lists=frozenset(draw(st.sets(st.sampled_from(sorted(LISTS))))),
    )


maybe = st.one_of(st.none(), records())
consent_rules = st.sampled_from(["never", "from_crm", "from_esp", "both"])


@given(records(), st.booleans())
def test_identical_sides_give_no_ops(same: Record, with_base: bool) -> None:
    same_esp = replace(same, kind="person", undeliverable=False)  # an ESP knows no record kinds
    crm = replace(same, opt_out_reason=None, undeliverable=False)
    assert diff(crm, same_esp, crm if with_base else None, RULES).ops == ()


@given(records(), records())
def test_a_one_sided_change_propagates(base: Record, crm: Record) -> None:
    esp = base
    crm = replace(crm, kind=base.kind, opt_out_reason=None, undeliverable=base.undeliverable)
    result = diff(crm, esp, base, RULES)
    _, new_esp = applied(crm, esp, result)
    assert result.target is not None and new_esp is not None
    # Fields the CRM may write: its value reached the ESP.
    for name in ("FIRSTNAME", "CITY"):
        assert new_esp.fields[name] == crm.fields[name]
    assert new_esp.lists == crm.lists


@given(maybe, maybe, maybe, consent_rules)
@settings(max_examples=400)
def test_applying_then_planning_again_gives_an_empty_plan(
    crm: Record | None, esp: Record | None, base: Record | None, resubscribe: str
) -> None:
    rules = make_rules(consent={"resubscribe": resubscribe})
    result = diff(crm, esp, base, rules) if (crm or esp or base) else None
    if result is None:
        return
    new_crm, new_esp = applied(crm, esp, result)
    if new_crm is None and new_esp is None and result.target is None:
        return
    again = diff(new_crm, new_esp, result.target, rules)
    assert [op for op in again.ops if op.kind != "conflict"] == []
    if result.target is not None and new_crm is not None:
        assert agrees(new_crm, result.target, "crm")


@given(maybe, maybe, maybe)
@settings(max_examples=400)
def test_an_opt_out_on_either_side_is_never_reverted(
    crm: Record | None, esp: Record | None, base: Record | None
) -> None:
    if not (crm or esp or base):
        return
    result = diff(crm, esp, base, RULES)
    new_crm, new_esp = applied(crm, esp, result)
    seen = any(r is not None and r.opted_out for r in (crm, esp))
    if seen:
        assert result.target is None or result.target.opted_out
        for side in (new_crm, new_esp):
            assert side is None or side.opted_out
    for op in result.ops:
        assert op.changes.get("opted_out") is None, "resubscribed against the rules"


@given(maybe, maybe, maybe, consent_rules)
@settings(max_examples=400)
def test_nobody_is_resubscribed_unless_allowed(
    crm: Record | None, esp: Record | None, base: Record | None, resubscribe: str
) -> None:
    if not (crm or esp or base):
        return
    rules = make_rules(consent={"resubscribe": resubscribe})
    for op in diff(crm, esp, base, rules).ops:
        change = op.changes.get("opted_out")
        if change is None:
            continue
        assert change == Change(True, False)
        # Writing the resubscribe to the ESP means it came from the CRM, and vice versa.
        origin = "crm" if op.kind == "upsert_contact" else "esp"
        assert resubscribe in ("both", f"from_{origin}")


SYMMETRIC = make_rules(
    fields=[
        {"crm": "first_name", "esp": "FIRSTNAME", "direction": "both"},
        {"crm": "city", "esp": "CITY", "direction": "both"},
    ]
)
MIRROR = {
    "upsert_contact": "update_crm",
    "update_crm": "upsert_contact",
    "opt_out_esp": "opt_out_crm",
    "opt_out_crm": "opt_out_esp",
    "conflict": "conflict",
    "blocked_resubscribe": "blocked_resubscribe",
}


def _sym(draw: Any) -> Record:
    opted_out = draw(st.booleans())
    return Record("p@example.com", opted_out=opted_out, fields={"FIRSTNAME": draw(TEXT), "CITY": draw(TEXT)})


@given(st.data())
def test_swapping_which_side_changed_mirrors_the_ops(data: st.DataObject) -> None:
    crm, esp, base = (_sym(data.draw) for _ in range(3))
    forward = diff(crm, esp, base, SYMMETRIC)
    backward = diff(esp, crm, base, SYMMETRIC)

    def shape(ops: Any, mirror: bool) -> list[tuple[Any, ...]]:
        out = []
        for op in ops:
            kind = MIRROR[op.kind] if mirror else op.kind
            changes = {
                k: (Change(v.new, v.old) if op.kind == "conflict" and mirror else v)
                for k, v in op.changes.items()
            }
            side = {"crm": "esp", "esp": "crm"}.get(op.side or "") if mirror else op.side
            out.append((kind, tuple(sorted(changes.items(), key=lambda kv: kv[0])), side))
        return sorted(out, key=repr)

    assert shape(forward.ops, mirror=True) == shape(backward.ops, mirror=False)


@given(records(), records(), records(), st.booleans())
@settings(max_examples=500)
def test_the_in_step_shortcut_gives_what_the_full_diff_gives(
    crm: Record, esp: Record, base: Record, copy_base: bool
) -> None:
    if copy_base:  # make the shortcut's case likely: both sides equal to the base
        crm = replace(base, opt_out_reason=None)
        esp = replace(base, kind="person")
    if not in_step(crm, esp, base, RULES):
        return
    # The full diff, without the shortcut: fields, consent and lists all agree with the base.
    ops: list[Any] = []
    fields, to_esp, to_crm = _fields(crm.email, crm, esp, base, RULES.fields, ops)
    consent = decide(crm.email, crm, esp, base, RULES.consent)
    assert ops == [] and to_esp == {} and to_crm == {} and consent.ops == ()
    assert fields == {name: value for name, value in base.fields.items()}
    assert (consent.opted_out, consent.reason) == (base.opted_out, base.opt_out_reason)
    assert crm.lists & LISTS == esp.lists & LISTS == base.lists & LISTS


@given(maybe, maybe, maybe)
@settings(max_examples=300)
def test_an_esp_that_freezes_suppressed_contacts_gets_no_writes_for_them_and_still_settles(
    crm: Record | None, esp: Record | None, base: Record | None
) -> None:
    if not (crm or esp or base):
        return
    email = "p@example.com"
    result = diff_record(email, crm, esp, base, RULES, LISTS, True)
    if result.target is not None and result.target.opted_out:
        assert not {op.kind for op in result.ops} & {"upsert_contact", "add_member"}
    new_crm, new_esp = applied(crm, esp, result)
    again = diff_record(email, new_crm, new_esp, result.target, RULES, LISTS, True)
    assert [op for op in again.ops if op.kind != "conflict"] == []


def test_a_suppressed_contacts_base_keeps_the_crms_lists_so_a_delta_never_reads_them_as_removed() -> None:
    # The ESP refuses list writes for a suppressed contact, so it holds fewer lists than the CRM.
    # An incremental read takes the base for a CRM row it does not mention; a base holding only the
    # ESP's lists then read as the CRM taking the contact off the others, and a later read showing
    # the ESP with one of those lists again (an admin added it, or an earlier read came back short)
    # planned its removal: an opted-out contact taken off a list the CRM still has it on.
    email = "p@example.com"
    crm = record(opted_out=True, opt_out_reason="unsubscribed", lists=frozenset({"Spring", "Webinar"}))
    esp = replace(crm, lists=frozenset({"Spring"}))
    first = diff_record(email, crm, esp, None, RULES, LISTS, True)
    assert "add_member" not in kinds(first) and first.target is not None
    assert first.target.lists == crm.lists
    again = diff_record(email, first.target, replace(esp, lists=crm.lists), first.target, RULES, LISTS, True)
    assert again.ops == () and not again.changed
    # What the CRM really drops still leaves the ESP.
    left = diff_record(
        email, replace(crm, lists=frozenset({"Spring"})), esp, first.target, RULES, LISTS, True
    )
    assert kinds(left) == [] and left.target is not None and left.target.lists == frozenset({"Spring"})
    dropped = replace(crm, lists=frozenset({"Webinar"}))
    assert [
        (op.kind, op.list) for op in diff_record(email, dropped, esp, first.target, RULES, LISTS, True).ops
    ] == [("remove_member", "Spring")]


def _unowned(resubscribe: str) -> RuleSet:
    return make_rules(
        fields=[
            {"crm": "first_name", "esp": "FIRSTNAME", "type": "text"},
            {"crm": "city", "esp": "CITY", "type": "text", "direction": "both"},
            {"crm": "score", "esp": "SCORE", "type": "numeric", "direction": "esp_to_crm"},
        ],
        consent={"resubscribe": resubscribe},
    )


def _resubscribes(ops: Iterable[Op]) -> list[tuple[str, Change]]:
    return [(op.kind, op.changes["opted_out"]) for op in ops if "opted_out" in op.changes]


@given(maybe, maybe, maybe, consent_rules, st.booleans(), st.booleans(), st.data())
@settings(max_examples=500)
def test_after_a_partly_confirmed_apply_what_was_confirmed_stands_and_opt_outs_hold(
    crm: Record | None,
    esp: Record | None,
    base: Record | None,
    resubscribe: str,
    owned: bool,
    frozen: bool,
    data: st.DataObject,
) -> None:
    """Some of a contact's ops confirmed, the others not, and the base `partly_confirmed` gives.
    The next diff agrees on the same record and plans what failed again; it resubscribes nobody
    the old base would not have; and a later edit on one side is that side's change, never a
    conflict the first diff did not park."""
    rules = make_rules(consent={"resubscribe": resubscribe}) if owned else _unowned(resubscribe)
    email = "p@example.com"
    result = diff_record(email, crm, esp, base, rules, LISTS, frozen)
    target = result.target
    if crm is None or target is None:
        return  # a contact gone from the CRM is forgotten only once all its ops went through
    ops = [op for op in result.ops if op.kind not in REPORT_ONLY]
    failed = data.draw(st.sets(st.sampled_from(range(len(ops)))) if ops else st.just(set()))
    # As the apply does: a contact it makes on the ESP waits there for its opt-out.
    creating = any(op.kind == "upsert_contact" and op.reason == NEW_CONTACT for op in ops)
    if creating and any(ops[i].kind == "opt_out_esp" for i in failed):
        failed |= {i for i, op in enumerate(ops) if op.kind in ("upsert_contact", "add_member")}
    unconfirmed = [op for i, op in enumerate(ops) if i in failed]
    confirmed = [op for i, op in enumerate(ops) if i not in failed]
    new_crm, new_esp = after_ops(crm, email, confirmed, "crm"), after_ops(esp, email, confirmed, "esp")
    esp_written = any(op.kind in ESP_OPS for op in confirmed)
    written = partly_confirmed(target, base, unconfirmed, esp_written=esp_written)
    new_base = written or base

    again = diff_record(email, new_crm, new_esp, new_base, rules, LISTS, frozen)
    assert again.target is not None
    if esp is not None:
        # (A contact the ESP had lost holds only what the confirmed ops wrote when made again, and
        # that is what an ESP-owned field, and the reason for its opt-out, then say.)
        assert (again.target.fields, again.target.lists) == (target.fields, target.lists)
        assert again.target.undeliverable == target.undeliverable
        assert again.target.opted_out == target.opted_out
    if resubscribe == "never":
        assert again.target.opted_out or not target.opted_out
    if target.opted_out:
        old = diff_record(email, new_crm, new_esp, base, rules, LISTS, frozen)
        assert set(_resubscribes(again.ops)) <= set(_resubscribes(old.ops))
    conflicts = {op.field for op in result.ops if op.kind == "conflict"}
    assert {op.field for op in again.ops if op.kind == "conflict"} <= conflicts

    # A field both sides now hold alike: an edit on one side is that side's change (once there is
    # a base: a contact never synced, both of whose sides hold values, is in conflict by nature).
    crm_edits = data.draw(st.booleans())
    name = data.draw(st.sampled_from(["FIRSTNAME", "CITY"]))
    if (
        written is not None
        and new_crm is not None
        and new_esp is not None
        and new_crm.fields.get(name) == new_esp.fields.get(name)
    ):
        edited = replace(new_crm if crm_edits else new_esp, fields={**new_crm.fields, name: "edited"})
        sides = (edited, new_esp) if crm_edits else (new_crm, edited)
        later = diff_record(email, *sides, new_base, rules, LISTS, frozen)
        assert {op.field for op in later.ops if op.kind == "conflict"} <= conflicts

    settled_crm, settled_esp = applied(new_crm, new_esp, again, email)
    third = diff_record(email, settled_crm, settled_esp, again.target, rules, LISTS, frozen)
    assert [op for op in third.ops if op.kind != "conflict"] == []
