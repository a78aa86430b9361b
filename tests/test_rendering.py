"""How a plan reads: symbols, old -> new values, per-kind counts for large plans, the summary line."""

from __future__ import annotations

import io

import msgspec
from rich.console import Console

from engine.plans import Change, Op, Plan, Tokens, order_ops
from engine.rendering import as_json, render

TOKENS = Tokens(1, "crm", "esp")


def shown(plan: Plan, **options: object) -> str:
    buffer = io.StringIO()
    render(plan, Console(file=buffer, width=200, color_system=None), **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_each_op_has_its_symbol_record_and_values() -> None:
    plan = Plan(
        "r",
        TOKENS,
        order_ops(
            [
                Op("upsert_contact", "bo@example.com", changes={"FIRSTNAME": Change("Bo", "Bob")}),
                Op("remove_member", "ann@example.com", list="Spring"),
                Op("opt_out_esp", "jo@example.com", reason="opted out in the CRM"),
                Op("conflict", "di@example.com", field="CITY", changes={"CITY": Change("York", "Hull")}),
            ]
        ),
    )
    text = shown(plan)
    assert "  ~ upsert_contact" in text and 'FIRSTNAME: "Bo" -> "Bob"' in text
    assert "  - remove_member           ann@example.com  from 'Spring'" in text
    assert "  ! opt_out_esp             jo@example.com  (opted out in the CRM)" in text
    assert 'CITY: CRM "York" vs ESP "Hull"' in text
    assert text.rstrip().endswith(
        "Plan: 1 opt_out_esp, 1 remove_member, 1 upsert_contact, 1 conflict (4 ops)."
    )


def test_a_large_plan_shows_counts_first_and_is_cut_with_a_hint() -> None:
    ops = tuple(Op("add_member", f"p{i}@example.com", list="Spring") for i in range(300))
    text = shown(Plan("r", TOKENS, ops), limit=10)
    lines = text.splitlines()
    assert lines[0] == "Plan: 300 add_member (300 ops)." and lines[1] == "Ops by kind:"
    assert "+ add_member" in lines[2] and "300" in lines[2]
    assert "290 more ops not shown" in text


def test_an_empty_plan_says_so() -> None:
    assert "No changes." in shown(Plan("r", TOKENS))


def test_held_plans_and_rejections_are_shown_after_the_summary() -> None:
    plan = Plan(
        "r",
        TOKENS,
        (Op("remove_member", "a@example.com", list="L"),),
        safety_stops=("would remove 1 of 2 in list 'L' (50%), above the 20% allowed",),
        rejections=(("crm", "b@example.com", "malformed email"),),
    )
    text = shown(plan)
    assert text.index("Plan:") < text.index("Held: would remove") < text.index("CRM b@example.com")


def test_json_has_the_summary_and_the_ops() -> None:
    plan = Plan(
        "r", TOKENS, (Op("add_member", "a@example.com", list="L"), Op("opt_out_crm", "b@example.com"))
    )
    document = msgspec.json.decode(as_json(plan, kinds=["add_member"]))
    assert document["summary"] == {"add_member": 1}
    assert document["ops"] == [{"kind": "add_member", "email": "a@example.com", "list": "L"}]


def test_contacts_left_alone_by_the_rules_are_listed_with_or_without_changes() -> None:
    left = (("esp", "c@example.com", "archived in Mailchimp"),)
    quiet = Plan("r", TOKENS, left_alone=left)
    text = shown(quiet)
    assert "No changes." in text and "1 record(s) left alone by the rules:" in text
    assert "ESP c@example.com: archived in Mailchimp" in text
    busy = Plan("r", TOKENS, (Op("add_member", "a@example.com", list="L"),), left_alone=left)
    assert shown(busy).index("Plan:") < shown(busy).index("ESP c@example.com")
    document = msgspec.json.decode(as_json(busy))
    assert document["left_alone"] == [
        {"side": "esp", "email": "c@example.com", "reason": "archived in Mailchimp"}
    ]
