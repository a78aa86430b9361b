"""Naming ESP lists after CRM campaigns: the names the rules' template gives, and the campaigns that
would share one list, which the plan refuses."""

from __future__ import annotations

import pytest

from engine.errors import PermanentError
from engine.lists import ListNamer, refuse_shared_list_names
from engine.records import Campaign
from tests.support import make_rules

RULES = make_rules(lists={"template": "{public:.10}", "fallback": "{name}", "master": "Everyone"})


def campaign(key: str, name: str, status: str = "open", public: str = "") -> Campaign:
    return Campaign(key=key, name=name, status=status, fields={"public": public} if public else {})


def test_names_come_from_the_template_cut_to_its_precision_or_else_the_fallback() -> None:
    namer = ListNamer(RULES, [campaign("1", "Spring", public="Spring webinar series"), campaign("2", "Fair")])
    assert namer.managed == {"Spring web", "Fair", "Everyone"}
    assert namer.lists_for({"1": "Booked", "2": "Booked"}) == {"Spring web", "Fair", "Everyone"}
    assert namer.shared_names() == []


@pytest.mark.parametrize(
    ("campaigns", "claims"),
    [
        # Cut to the same ten characters.
        (
            [campaign("1", "A", public="Spring webinar"), campaign("2", "B", public="Spring web days")],
            ("1", "2"),
        ),
        # ESPs compare list names ignoring case.
        ([campaign("1", "Fair"), campaign("2", "FAIR")], ("1", "2")),
        # A closed campaign's list would take the open one's members, and lose its own.
        ([campaign("1", "Fair", status="closed"), campaign("2", "Fair")], ("1", "2")),
        # The master list.
        ([campaign("3", "everyone")], ("3",)),
    ],
)
def test_campaigns_that_would_share_a_list_are_named_and_refused(
    campaigns: list[Campaign], claims: tuple[str, ...]
) -> None:
    [shared] = ListNamer(RULES, campaigns).shared_names()
    assert [f"campaign {key} " in shared for key in claims] == [True] * len(claims)
    with pytest.raises(PermanentError, match="nothing was written"):
        refuse_shared_list_names(RULES, campaigns)


def test_a_campaign_whose_list_name_the_esp_reserves_is_refused() -> None:
    campaigns = [campaign("1", "Fair"), campaign("2", "test")]
    assert ListNamer(RULES, campaigns).shared_names() == []
    with pytest.raises(PermanentError, match=r"the ESP reserves 'Test'; campaign 2 \('test'\)"):
        refuse_shared_list_names(RULES, campaigns, reserved={"Test", "All Contacts"})


def test_campaigns_the_rules_do_not_integrate_may_share_a_name() -> None:
    rules = make_rules(campaigns={"integrated": ["1"]})
    namer = ListNamer(rules, [campaign("1", "Fair"), campaign("2", "Fair")])
    assert namer.shared_names() == [] and namer.managed == {"Fair"}
