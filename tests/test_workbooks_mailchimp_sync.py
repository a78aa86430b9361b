"""Workbooks to Mailchimp end to end, through the engine, over both emulators (ASGITransport), with the
shipped rules/workbooks-mailchimp.toml: the job of shared/seeds/002, done in one Mailchimp audience.

The assertions read the emulators' own state: the audience's members, tags and merge fields and the
calls Mailchimp was sent, and Workbooks' records and online activities.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from adapters.demos import workbooks_mailchimp as kit
from adapters.demos.workbooks_crm import CAMPAIGNS, LEAD_EMAIL, LEADS, ONLINE_ACTIVITIES
from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_data import Member, subscriber_hash
from adapters.mailchimp.emulator_seeding import ActivityShares
from adapters.mailchimp.members import ARCHIVED, NEVER_RESUBSCRIBED
from engine.planning import make_plan
from tests.workbooks_world import WorkbooksWorld

pytestmark = pytest.mark.asyncio
SELF = "I no longer want to receive these emails"


class World(WorkbooksWorld):
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.esp, self.audience = kit.account()
        super().__init__(
            root,
            monkeypatch,
            rules=kit.RULES,
            replacements={},
            secrets=kit.EMULATOR_SECRETS,
            esp_transport=lambda: httpx.ASGITransport(app=create_app(self.esp)),
        )

    def member(self, email: str) -> Member:
        return self.esp.member(self.audience, email)

    def tags_of(self, email: str) -> set[str]:
        return {tag.name for tag in self.audience.tags_of(self.member(email).id)}

    def known(self, email: str) -> bool:
        return subscriber_hash(email) in self.audience.members

    def mailable(self) -> list[str]:
        """CRM people subscribed in Mailchimp and tagged with a campaign."""
        return [
            email
            for email in self.crm.subscribed()
            if self.known(email) and self.member(email).status == "subscribed" and self.tags_of(email)
        ]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


@pytest.mark.parametrize("membership", ["tag", "segment"])
async def test_a_first_sync_fills_one_audience_in_bulk_and_a_second_plan_is_empty(
    world: World, membership: str
) -> None:
    world.edit_rules('membership = "tag"', f'membership = "{membership}"')
    first = await world.plan_and_apply()
    kinds = Counter(op.kind for op in first.ops)
    # One audience; a tag per open campaign, named from its public name (the closed one makes none).
    assert list(world.esp.audiences) == [world.audience.id]
    public = {c["cf_marketing_campaign_public_name"] for c in world.crm.open_campaigns()}
    assert {tag.name for tag in world.audience.segments.values()} == public
    # Members went in bulk: batch subscribe takes 500 a call.
    members = world.audience.members.values()
    assert len(members) == kinds["upsert_contact"] > 100
    subscribes = [c for c in world.esp.calls if c[:2] == ("POST", f"/3.0/lists/{world.audience.id}")]
    assert len(subscribes) <= -(-kinds["upsert_contact"] // 500) + -(-kinds["opt_out_esp"] // 500)
    # status_if_new: new members subscribed, the CRM's opted-out ones unsubscribed.
    assert Counter(m.status for m in members) == {
        "subscribed": kinds["upsert_contact"] - kinds["opt_out_esp"],
        "unsubscribed": kinds["opt_out_esp"],
    }
    # Merge fields, each only on its record type.
    assert {"COMPANY", "CUSTSINCE", "INTERESTS", "LEADSCORE"} <= set(world.audience.merge_fields)
    person = world.crm.subscribed()[0]
    merge = world.member(person).merge
    assert merge["FNAME"] == world.crm.person(person)["person_first_name"]
    assert merge["CUSTSINCE"] and merge["LEADSCORE"] == ""
    lead = next(r for r in world.crm.state.live(LEADS) if world.known(str(r[LEAD_EMAIL]).lower()))
    lead_merge = world.member(str(lead[LEAD_EMAIL]).lower()).merge
    assert lead_merge["LEADSCORE"] == lead["cf_sales_lead_score"] and lead_merge["CUSTSINCE"] == ""
    assert lead_merge["COMPANY"] == lead["org_lead_party[name]"]
    assert (await world.plan()).ops == ()


async def test_opt_outs_made_on_either_side_end_up_on_both_and_nobody_is_resubscribed(world: World) -> None:
    await world.plan_and_apply()
    in_crm, in_esp, cleaned = world.mailable()[:3]
    world.crm.opt_out(in_crm)
    world.esp.unsubscribe(world.audience, world.member(in_esp), SELF, world.esp.now())
    world.member(cleaned).status = "cleaned"
    plan = await world.plan_and_apply()
    assert {(op.kind, op.email) for op in plan.ops} == {
        ("opt_out_esp", in_crm),
        ("opt_out_crm", in_esp),
        ("opt_out_crm", cleaned),
        ("mark_undeliverable_crm", cleaned),  # cleaned: the address hard-bounced
    }
    assert world.member(in_crm).status == "unsubscribed"
    assert world.crm.opted_out(in_esp) and world.crm.opted_out(cleaned) and world.crm.undeliverable(cleaned)
    # People opting back in by hand in the CRM resubscribe nobody, and the CRM's flag comes back.
    for email in (in_esp, cleaned):
        world.crm.opt_out(email, False)
    again = await world.plan_and_apply()
    assert {op.email for op in again.ops if op.kind == "blocked_resubscribe"} == {in_esp, cleaned}
    assert (world.member(in_esp).status, world.member(cleaned).status) == ("unsubscribed", "cleaned")
    assert world.crm.opted_out(in_esp) and world.crm.opted_out(cleaned)
    assert (await world.plan()).ops == ()


async def test_unsubscribed_and_cleaned_members_are_never_resubscribed_even_where_the_rules_allow_it(
    world: World,
) -> None:
    reasons = 'resubscribe_reasons = ["crm", "admin", "unsubscribed", "hard_bounce"]'
    world.edit_rules(
        'resubscribe = "never"          # an opt-out', f'resubscribe = "from_crm"\n{reasons}\n# an opt-out'
    )
    await world.plan_and_apply()
    unsubscribed, cleaned = world.mailable()[:2]
    world.esp.unsubscribe(world.audience, world.member(unsubscribed), SELF, world.esp.now())
    world.member(cleaned).status = "cleaned"
    await world.plan_and_apply()
    for email in (unsubscribed, cleaned):
        world.crm.opt_out(email, False)
    report = await world.apply()
    # The adapter's resubscribe = "never": Mailchimp lets no API call subscribe them again.
    assert report.rejected["upsert_contact"] == 2 and report.reasons[NEVER_RESUBSCRIBED] == 2
    assert (world.member(unsubscribed).status, world.member(cleaned).status) == ("unsubscribed", "cleaned")
    # With resubscribe = "pending" the unsubscribed one is asked to confirm; a cleaned address stays.
    world.edit_rules('resubscribe = "never"                     # unsubscribed', 'resubscribe = "pending" #')
    report = await world.apply()
    assert report.done["upsert_contact"] == 1 and report.rejected["upsert_contact"] == 1
    assert (world.member(unsubscribed).status, world.member(cleaned).status) == ("pending", "cleaned")


async def test_archived_members_are_left_archived_or_restored_as_the_rules_say(world: World) -> None:
    await world.plan_and_apply()
    email = world.mailable()[0]
    tags = world.tags_of(email)
    world.esp.archive(world.audience, email)
    world.crm.rename(email)
    plan = await world.plan()
    # "skip": an admin put it away; the plan leaves it be and says so, rather than planning an
    # upsert Mailchimp would refuse on every run.
    assert not [op for op in plan.ops if op.email == email]
    assert plan.left_alone == (("esp", email, ARCHIVED),)
    report = await world.apply()
    assert not report.rejected and world.member(email).status == "archived"
    assert (await world.plan()).ops == ()
    world.edit_rules('archived = "skip"', 'archived = "restore"')
    await world.plan_and_apply()
    member = world.member(email)
    assert member.status == "subscribed" and world.tags_of(email) == tags
    assert member.merge["FNAME"] == world.crm.person(email)["person_first_name"]
    assert (await world.plan()).ops == ()


async def test_a_member_taken_off_a_campaign_or_unsubscribed_from_it_loses_that_tag_only(
    world: World,
) -> None:
    await world.plan_and_apply()
    for email, _ in await world.take_two_off_campaigns(world.mailable(), world.tags_of):
        assert world.member(email).status == "subscribed"  # still in the audience, still mailable
    assert (await world.plan()).ops == ()


async def test_activity_comes_back_and_cleaned_addresses_mark_the_crm(world: World) -> None:
    await world.plan_and_apply()
    tag = max(world.audience.segments.values(), key=lambda segment: len(segment.members))
    sent = world.esp.add_campaign(world.audience.id, "November news", segment_id=tag.id)
    world.esp.generate_activity(sent.id, ActivityShares(hard_bounce=0.1, soft_bounce=0.1, unsubscribe=0.05))
    did = list(sent.recipients.values())
    hard = {r.email.lower() for r in did if r.bounce and r.bounce[0] == "hard"}
    soft = {r.email.lower() for r in did if r.bounce and r.bounce[0] == "soft"}
    gone = {r.email.lower() for r in did if r.unsubscribed}
    assert hard and soft and gone

    flagged = {email for email in hard | soft if world.crm.undeliverable(email)}  # by the CRM itself
    report = await world.apply("activity", override_safety=True)  # 25% opted out: past the safety share
    assert not report.rejected, report.reasons
    activities = [a for a in world.crm.state.live(ONLINE_ACTIVITIES) if "November news" in str(a["name"])]
    by_type = Counter(a["online_activity_type"] for a in activities)
    assert by_type["Email Open"] == sum(len(r.opens) for r in did)
    assert by_type["Click Through"] == sum(len(r.clicks) for r in did)
    assert by_type["Email Bounce"] == len(hard | soft)
    assert by_type["Unsubscribe"] == len(gone)
    # Cleaned (hard-bounced) addresses are undeliverable and opted out in the CRM; unsubscribes opted out.
    for email in hard | soft:
        assert world.crm.undeliverable(email) == (email in hard | flagged), email
    assert all(world.crm.opted_out(email) for email in hard | gone)
    campaign = world.crm.state.get(CAMPAIGNS, activities[0]["marketing_campaign_id"])
    assert campaign["cf_marketing_campaign_email_opens"] == by_type["Email Open"]
    assert campaign["cf_marketing_campaign_unsubscribes"] == len(gone)

    assert (await world.plan()).ops == ()
    async with world.sync() as sync:  # a run that forgot its cursor re-reads all: nothing twice
        await sync.store.set_cursor(sync.name, "esp", "activity", '{"cursor": null}')
    await world.apply()
    again = [a for a in world.crm.state.live(ONLINE_ACTIVITIES) if "November news" in str(a["name"])]
    assert len(again) == len(activities)


async def test_each_process_alone_then_together_converge(world: World) -> None:
    for process in ("members", "contacts", "activity"):
        await world.plan_and_apply(process)
    assert world.audience.members and world.audience.segments
    async with world.sync() as sync:
        assert (await make_plan(sync)).ops == ()
