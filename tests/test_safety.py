"""The opt-out share counts synced contacts only: a first sync cut short is not held for the CRM
opt-outs it has still to send, and a crowd of synced contacts opting out still is."""

from __future__ import annotations

from engine.plans import Op
from engine.ruleset import Safety
from engine.safety import threshold_stops

SAFETY = Safety(max_opt_out_share=0.05, min_list_size=20)
SYNCED = {f"s{n}@example.com": ("Spring",) for n in range(40)}


def lists_of(email: str) -> tuple[str, ...] | None:
    return SYNCED.get(email)


def opt_outs(emails: list[str]) -> list[Op]:
    return [Op("opt_out_esp", email=email) for email in emails]


def test_opt_outs_of_addresses_never_synced_do_not_trip_the_share() -> None:
    # 40 synced contacts after a first sync cut short; 200 CRM opt-outs the ESP has not seen yet.
    never_synced = opt_outs([f"new{n}@example.com" for n in range(200)])
    assert threshold_stops(never_synced, lists_of, {"Spring": 40}, 40, SAFETY) == ()


def test_synced_contacts_opting_out_in_a_crowd_are_still_held() -> None:
    crowd = opt_outs([f"s{n}@example.com" for n in range(10)] + [f"new{n}@example.com" for n in range(200)])
    stops = threshold_stops(crowd, lists_of, {"Spring": 40}, 40, SAFETY)
    assert sorted(stop.split(" (")[0] for stop in stops) == [
        "would opt out 10 of 40 in all synced contacts",
        "would opt out 10 of 40 in list 'Spring'",
    ]
