"""Workbooks to Constant Contact end to end, through the engine, over both emulators (ASGITransport),
with the shipped rules/workbooks-constantcontact.toml: what the integration of shared/seeds/002 does.

The assertions read the emulators' own state: Constant Contact's lists, contacts, custom fields and
bulk activities, and Workbooks' records and online activities.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

import engine.applying
from adapters.constantcontact.activity import HARD_BOUNCES
from adapters.constantcontact.adapter import SELF_OPTED_OUT
from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_data import Contact, Tracking
from adapters.constantcontact.emulator_generate import SendShares
from adapters.demos import workbooks_constantcontact as kit
from adapters.demos.workbooks_crm import CAMPAIGNS, LEADS, ONLINE_ACTIVITIES
from engine.errors import RulesError
from engine.following import follow_jobs
from engine.planning import make_plan
from engine.store import StateStore
from tests.workbooks_world import WorkbooksWorld

pytestmark = pytest.mark.asyncio
MASTER = kit.MASTER


class World(WorkbooksWorld):
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.esp = kit.account()
        super().__init__(
            root,
            monkeypatch,
            rules=kit.RULES,
            replacements=kit.REPLACEMENTS,
            secrets=kit.EMULATOR_SECRETS,
            esp_transport=lambda: httpx.ASGITransport(app=create_app(self.esp)),
        )

    async def start(self) -> World:
        """Store the emulator's grant where `listsync auth constant-contact` would: the rule set's
        state store, under its name and the ESP side."""
        async with await StateStore.open(self.rules.state_path) as store:
            await store.save_tokens(self.rules.rules.name, "esp", "constant-contact", kit.grant(self.esp))
        return self

    def contact(self, email: str) -> Contact:
        found = self.esp.contact_by_email(email)
        assert found is not None, email
        return found

    def lists_of(self, email: str) -> set[str]:
        return {self.esp.lists[list_id].name for list_id in self.contact(email).lists}

    def custom(self, email: str) -> dict[str, str]:
        return {self.esp.custom_fields[i].name: value for i, value in self.contact(email).custom.items()}

    def mailable(self) -> list[str]:
        """CRM people who are subscribed in Constant Contact and on a campaign list besides the master."""
        return [
            email
            for email in self.crm.subscribed()
            if (contact := self.esp.contact_by_email(email)) is not None
            and contact.permission != "unsubscribed"
            and self.lists_of(email) - {MASTER}
        ]


@pytest_asyncio.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return await World(tmp_path, monkeypatch).start()


async def test_a_first_sync_builds_lists_fields_and_contacts_in_bulk_and_a_second_plan_is_empty(
    world: World,
) -> None:
    first = await world.plan_and_apply()
    kinds = Counter(op.kind for op in first.ops)
    # One list per open campaign, named from its public name, and the master list; the closed
    # campaign makes none.
    campaigns = world.crm.state.live(CAMPAIGNS)
    public = {c["cf_marketing_campaign_public_name"] for c in campaigns if c["record_state"] == "open"}
    assert {x.name for x in world.esp.lists.values()} == public | {MASTER}
    assert kinds["create_list"] == len(public) + 1
    # Every synced contact is on the master list (opted-out ones join no list).
    contacts = [c for c in world.esp.contacts.values() if c.deleted_at is None]
    assert len(contacts) > 100
    subscribed = [c for c in contacts if c.permission != "unsubscribed"]
    master = next(x.id for x in world.esp.lists.values() if x.name == MASTER)
    assert all(master in c.lists for c in subscribed)
    assert world.esp.members(master) == len(subscribed)
    # Contacts went in bulk: JSON imports and membership activities, not one call per contact.
    imports = Counter(activity.kind for activity in world.esp.activities.values())
    assert imports["contacts_json_import"] == 1
    per_contact = [call for call in world.esp.calls if call[:2] == ("POST", "/v3/contacts")]
    assert len(per_contact) <= kinds["opt_out_esp"]  # only unknown addresses created unsubscribed
    # Mapped fields: the contact's own properties and custom fields, each only on its record type.
    assert {f.name for f in world.esp.custom_fields.values()} == {"INTERESTS", "CUSTOMER_SINCE", "LEAD_SCORE"}
    person_email = world.crm.subscribed()[0]
    person = world.crm.person(person_email)
    assert world.contact(person_email).scalars["first_name"] == person["person_first_name"]
    assert set(world.custom(person_email)) == {"INTERESTS", "CUSTOMER_SINCE"}
    lead = next(
        r for r in world.crm.state.live(LEADS)
        if (email := str(r["org_lead_party[main_location[email]]"]).lower()) in world.esp.by_email
        and world.contact(email).permission != "unsubscribed"
    )  # fmt: skip
    lead_email = str(lead["org_lead_party[main_location[email]]"]).lower()
    assert world.custom(lead_email) == {
        "INTERESTS": lead["cf_sales_lead_interests"],
        "LEAD_SCORE": str(lead["cf_sales_lead_score"]),
    }
    assert world.contact(lead_email).scalars["company_name"] == lead["org_lead_party[name]"]
    assert (await world.plan()).ops == ()


async def test_a_campaign_without_a_public_name_is_listed_under_its_name(world: World) -> None:
    campaign = next(c for c in world.crm.state.live(CAMPAIGNS) if c["record_state"] == "open")
    world.crm.state.update(CAMPAIGNS, campaign["id"], {"cf_marketing_campaign_public_name": ""})
    await world.plan_and_apply()
    names = {x.name for x in world.esp.lists.values()}
    assert campaign["name"] in names and campaign["cf_marketing_campaign_public_name"] not in names


async def test_opt_outs_made_on_either_side_end_up_on_both_and_nobody_is_resubscribed(world: World) -> None:
    await world.plan_and_apply()
    in_crm, in_esp = world.mailable()[:2]
    world.crm.opt_out(in_crm)
    world.esp.unsubscribe(world.contact(in_esp), "Contact", "no longer interested")
    plan = await world.plan_and_apply()
    assert {(op.kind, op.email) for op in plan.ops if op.kind.startswith("opt_out")} == {
        ("opt_out_esp", in_crm),
        ("opt_out_crm", in_esp),
    }
    # The CRM's opt-out is the account's in Constant Contact, and the contact's own reaches the CRM.
    assert (world.contact(in_crm).permission, world.contact(in_crm).opt_out_source) == (
        "unsubscribed",
        "Account",
    )
    assert world.crm.person(in_esp)["no_email_soliciting"] is True
    # A person opting back in by hand in the CRM resubscribes nobody, and the CRM's flag comes back.
    world.crm.opt_out(in_esp, False)
    again = await world.plan_and_apply()
    assert "blocked_resubscribe" in {op.kind for op in again.ops if op.email == in_esp}
    assert world.contact(in_esp).permission == "unsubscribed"
    assert world.crm.person(in_esp)["no_email_soliciting"] is True
    assert (await world.plan()).ops == ()


async def test_a_contact_who_opted_out_themselves_is_never_re_added_even_where_the_rules_allow_it(
    world: World,
) -> None:
    # Rules that let the CRM reverse any opt-out: only Constant Contact stands in the way.
    reasons = 'resubscribe_reasons = ["crm", "admin", "unsubscribed"]'
    world.edit_rules('resubscribe = "never"', f'resubscribe = "from_crm"\n{reasons}')
    await world.plan_and_apply()
    themselves, by_admin = world.mailable()[:2]
    lists_before = world.lists_of(themselves)
    world.esp.unsubscribe(world.contact(themselves), "Contact", "no longer interested")
    world.esp.unsubscribe(world.contact(by_admin), "Account")
    await world.plan_and_apply()
    assert world.crm.person(themselves)["no_email_soliciting"] is True
    # Both opt back in in the CRM; one joins another campaign as well, the other is renamed.
    joined = next(
        c["id"] for c in world.crm.open_campaigns() if world.crm.list_of_campaign(c["id"]) not in lists_before
    )
    world.crm.join(themselves, joined)
    world.crm.rename(by_admin)
    for email in (themselves, by_admin):
        world.crm.opt_out(email, False)
    activities = len(world.esp.activities)
    report = await world.apply()
    # Constant Contact refuses the one, with the reason, every time; the account's opt-out may be lifted.
    assert report.rejected == {"upsert_contact": 1, "add_member": 1} and report.reasons == {SELF_OPTED_OUT: 2}
    assert world.contact(themselves).permission == "unsubscribed"
    assert world.contact(themselves).opt_out_source == "Contact"
    assert world.lists_of(themselves) == lists_before  # never added to the campaign it joined
    assert not added_to_a_list(world, world.contact(themselves).id, since=activities)
    # The resubscribed contact gets what changed in the CRM meanwhile too.
    assert world.contact(by_admin).permission == "explicit"
    assert world.contact(by_admin).scalars["first_name"] == world.crm.person(by_admin)["person_first_name"]
    again = await world.apply()
    assert again.reasons == {SELF_OPTED_OUT: 2} and world.contact(themselves).permission == "unsubscribed"


def added_to_a_list(world: World, contact_id: str, *, since: int) -> bool:
    """Whether a bulk activity after the account's first `since` added `contact_id` to a list."""
    return any(
        activity.kind == "add_list_memberships"
        and contact_id in activity.payload.get("source", {}).get("contact_ids", [])
        for activity in list(world.esp.activities.values())[since:]
    )


async def test_a_member_taken_off_a_campaign_or_unsubscribed_from_it_leaves_that_list_only(
    world: World,
) -> None:
    await world.plan_and_apply()
    for email, _ in await world.take_two_off_campaigns(world.mailable(), world.lists_of):
        assert MASTER in world.lists_of(email)  # still a synced contact
    assert (await world.plan()).ops == ()


async def test_activity_comes_back_with_bounce_codes_and_hard_bounces_mark_the_crm(world: World) -> None:
    await world.plan_and_apply()
    target = max(
        (x for x in world.esp.lists.values() if x.name != MASTER), key=lambda x: world.esp.members(x.id)
    )
    sent = world.esp.add_campaign("November news", list_ids=[target.id])
    world.esp.generate_activity(sent.id, SendShares(bounce=0.3, open=0.6, click=0.5, optout=0.02))
    tracked = Counter(event.kind for event in sent.tracking)
    bounces = [event for event in sent.tracking if event.kind == "em_bounces"]
    hard = {e.email.lower() for e in bounces if e.bounce_code in HARD_BOUNCES}
    soft = {e.email.lower() for e in bounces} - hard
    assert hard and soft and tracked["em_opens"] and tracked["em_optouts"]

    flagged = {email for email in hard | soft if world.crm.undeliverable(email)}  # by the CRM itself
    report = await world.apply("activity", override_safety=True)  # 30% bounces: past the safety share
    assert not report.rejected, report.reasons
    activities = [a for a in world.crm.state.live(ONLINE_ACTIVITIES) if "November news" in str(a["name"])]
    by_type = Counter(a["online_activity_type"] for a in activities)
    assert by_type["Email Open"] == tracked["em_opens"]
    assert by_type["Click Through"] == tracked["em_clicks"]
    assert by_type["Email Bounce"] == tracked["em_bounces"]
    assert by_type["Unsubscribe"] == tracked["em_optouts"]
    # Each bounce keeps its code, in the activity's action name and its name.
    recorded = Counter(
        str(a["action_name"]) for a in activities if a["online_activity_type"] == "Email Bounce"
    )
    assert recorded == Counter(str(e.bounce_code) for e in bounces)
    assert all(f"(code {a['action_name']})" in str(a["name"]) for a in activities if a["action_name"])
    # Hard bounces mark the CRM email undeliverable; soft ones do not.
    for email in hard | soft:
        assert world.crm.undeliverable(email) == (email in hard | flagged), email
    # Opt-outs from the email reach the CRM's opt-out flag, and the campaign keeps the totals.
    optout: Tracking = next(e for e in sent.tracking if e.kind == "em_optouts")
    assert world.crm.opted_out(optout.email.lower())
    campaign = world.crm.state.get(CAMPAIGNS, activities[0]["marketing_campaign_id"])
    assert campaign["cf_marketing_campaign_email_bounces"] == tracked["em_bounces"]
    assert campaign["cf_marketing_campaign_email_opens"] == tracked["em_opens"]

    assert (await world.plan()).ops == ()
    async with world.sync() as sync:  # a run that forgot its cursor re-reads all: nothing twice
        await sync.store.set_cursor(sync.name, "esp", "activity", '{"cursor": null}')
    await world.apply()
    assert len(
        [a for a in world.crm.state.live(ONLINE_ACTIVITIES) if "November news" in str(a["name"])]
    ) == len(activities)


async def test_the_imports_process_follows_bulk_activities_the_apply_left_running(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.applying, "JOB_WAIT", 0.05)
    world.esp.tune(activity_polls=10_000)  # activities run until the test lets them finish
    async with world.sync() as sync:
        plan = await make_plan(sync)
        report = await engine.applying.apply_plan(sync, plan)
        assert report.pending["upsert_contact"] > 0 and report.base_written < len(plan.targets)
        still = await sync.store.open_jobs(sync.name)
        assert still
    world.esp.tune(activity_polls=0)
    for activity in world.esp.activities.values():
        activity.polls_needed = 0  # Constant Contact gets round to them
    async with world.sync() as sync:
        followed = await follow_jobs(sync)
        assert followed.jobs["completed"] == len(still) and followed.rows["done"] > 0
        assert await sync.store.open_jobs(sync.name) == []
    await world.plan_and_apply()
    assert (await world.plan()).ops == ()


async def test_each_process_alone_then_together_converge(world: World) -> None:
    for process in ("members", "contacts", "activity"):
        await world.plan_and_apply(process)
    assert world.esp.lists and world.esp.custom_fields
    assert (await world.plan()).ops == ()


async def test_a_mapped_crm_field_the_database_lacks_stops_the_plan_before_any_write(world: World) -> None:
    world.edit_rules('crm = "cf_person_customer_since"', 'crm = "cf_person_customer_snice"')
    with pytest.raises(RulesError) as raised:
        await world.plan()
    [problem] = raised.value.problems
    assert problem.path == "fields[5].crm" and "'cf_person_customer_since'" in problem.message
    assert world.esp.contacts == {} and world.esp.lists == {}
