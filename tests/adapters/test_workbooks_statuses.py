"""Campaign member statuses through the Workbooks adapter: each membership's status id is resolved
through `crm/campaign_membership_status` (by name or by status, as the settings say), in one read a
snapshot, and renamed or deleted statuses reach an incremental snapshot's rows."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest

from adapters.workbooks.adapter import WorkbooksSettings
from adapters.workbooks.emulator_state import WorkbooksState
from adapters.workbooks.statuses import Attribute
from tests.adapters.test_workbooks_adapter import KEYED, Clock, by_email, opened

STATUSES = "/crm/campaign_membership_status.api"


class Crm:
    """Two campaigns made a day ago (so their statuses are older than any cursor), and three people
    in the first, each holding another of its statuses."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.state = WorkbooksState(clock=self.clock)
        made = self.state.now() - timedelta(days=1)
        self.campaigns = [
            self.state.insert("crm/campaigns", {"name": name}, at=made)["id"] for name in ("Spring", "Autumn")
        ]
        self.statuses = self.state.statuses_of(self.campaigns[0])
        self.members: dict[str, dict[str, Any]] = {}
        for email, status in (
            ("keen@example.com", "Interested"),
            ("plain@example.com", "Potential"),
            ("gone@example.com", "Unsubscribed"),
        ):
            person = self.state.insert("crm/people", {"person_last_name": "X", "main_location[email]": email})
            self.members[email] = self.state.insert(
                "crm/campaign_membership",
                {
                    "marketing_campaign_id": self.campaigns[0],
                    "party_or_lead_id": person["id"],
                    "campaign_membership_status_id": self.statuses[status],
                },
            )

    def statuses_of(self, rows: dict[str, Any]) -> dict[str, str]:
        """email -> the status of the first campaign's membership, for the rows that have one."""
        spring = str(self.campaigns[0])
        return {email: row.memberships[spring] for email, row in rows.items() if spring in row.memberships}


def settings(member_status: Attribute) -> WorkbooksSettings:
    return msgspec.structs.replace(KEYED, member_status=member_status)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("member_status", "expected"),
    [
        ("name", {"keen@example.com": "Interested", "plain@example.com": "Potential",
                  "gone@example.com": "Unsubscribed"}),
        ("status", {"keen@example.com": "Potential", "plain@example.com": "Potential",
                    "gone@example.com": "Cancelled"}),
    ],
)  # fmt: skip
async def test_a_membership_names_its_status_by_name_or_by_status(
    member_status: Attribute, expected: dict[str, str]
) -> None:
    crm = Crm()
    async with opened(crm.state, settings(member_status)) as adapter:
        snapshot = await adapter.snapshot()
    assert crm.statuses_of(by_email(snapshot)) == expected


def test_member_status_is_name_by_default_and_takes_only_name_or_status() -> None:
    assert KEYED.member_status == "name"
    with pytest.raises(msgspec.ValidationError, match="member_status"):
        msgspec.convert({"api_key": {"env": "K"}, "member_status": "title"}, WorkbooksSettings)


@pytest.mark.asyncio
async def test_statuses_are_read_once_a_snapshot_for_every_campaign_in_one_filter() -> None:
    crm, sent = Crm(), list[httpx.Request]()
    async with opened(crm.state, sent=sent) as adapter:
        full = await adapter.snapshot()
        crm.clock.now += 10
        await adapter.snapshot(full.cursor)
    reads = [parse_qs(r.content.decode()) for r in sent if r.url.path == STATUSES]
    assert len(reads) == 2  # one each, although there are two campaigns
    for asked in reads:
        assert asked["_select_columns[]"][:3] == ["marketing_campaign_id", "status", "name"]
        assert asked["_ff[]"][0] == "marketing_campaign_id" and asked["_ft[]"][0] == "eq"
        assert asked["_fc[]"][0] == ",".join(str(c) for c in crm.campaigns)


@pytest.mark.asyncio
async def test_an_incremental_snapshot_rereads_the_members_of_a_renamed_status() -> None:
    crm = Crm()
    async with opened(crm.state) as adapter:
        crm.clock.now += 100
        other = crm.state.insert(
            "crm/people", {"person_last_name": "Y", "main_location[email]": "y@example.com"}
        )
        full = await adapter.snapshot()
        crm.clock.now += 100
        crm.state.update("crm/campaign_membership_status", crm.statuses["Interested"], {"name": "Left"})
        delta = await adapter.snapshot(full.cursor)
    rows = by_email(delta)
    assert rows.keys() == {"keen@example.com", other["main_location[email]"]}  # the latter: at the cursor
    assert rows["keen@example.com"].memberships == {str(crm.campaigns[0]): "Left"}


@pytest.mark.asyncio
async def test_a_membership_whose_status_was_deleted_has_an_empty_status() -> None:
    crm = Crm()
    async with opened(crm.state) as adapter:
        crm.clock.now += 100
        crm.state.insert("crm/people", {"person_last_name": "Y", "main_location[email]": "y@example.com"})
        full = await adapter.snapshot()
        crm.clock.now += 100
        crm.state.delete("crm/campaign_membership_status", crm.statuses["Unsubscribed"])
        delta = await adapter.snapshot(full.cursor)
        again = await adapter.snapshot()
    assert crm.statuses_of(by_email(full))["gone@example.com"] == "Unsubscribed"
    assert by_email(delta)["gone@example.com"].memberships == {str(crm.campaigns[0]): ""}
    assert crm.statuses_of(by_email(again)) == crm.statuses_of(by_email(full)) | {"gone@example.com": ""}
    assert Counter(crm.statuses_of(by_email(again)).values()) == Counter(
        {"Interested": 1, "Potential": 1, "": 1}
    )
