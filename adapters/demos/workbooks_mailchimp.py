"""The Workbooks to Mailchimp demo (`listsync demo --esp mailchimp`): `rules/workbooks-mailchimp.toml`
over the Workbooks and Mailchimp emulators, telling the story of `workbooks_kit`.

Mailchimp's part: the rules' audience ("Workbooks Contacts") exists, and 25 people had unsubscribed
from it before the first sync; between syncs 4 members unsubscribe, one address is cleaned after a
hard bounce, and a campaign goes to the tag of the largest campaign with opens, clicks, bounces (a
hard one cleans the member) and unsubscribes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from adapters.demos import REPO
from adapters.demos.workbooks_crm import SECRETS
from adapters.demos.workbooks_kit import SEED, WorkbooksDemo
from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_data import Audience, Member
from adapters.mailchimp.emulator_seeding import ActivityShares
from adapters.mailchimp.emulator_state import Knobs, MailchimpState

RULES = REPO / "rules" / "workbooks-mailchimp.toml"
AUDIENCE = "Workbooks Contacts"  # the rules' esp.settings.audience
EMULATOR_SECRETS = {**SECRETS, "MAILCHIMP_API_KEY": Knobs().api_key}
SELF = "I no longer want to receive these emails"
# Gentler than the generator's default, which opts out more than the rules' 5% safety share of a list.
SEND = ActivityShares(hard_bounce=0.01, soft_bounce=0.02, unsubscribe=0.01, complaint=0.0)


def account() -> tuple[MailchimpState, Audience]:
    """An account with the rules' audience, empty; its tag batches finish at their first poll."""
    state = MailchimpState(Knobs(batch_polls=1), seed=SEED, started_at=datetime.now(UTC))
    return state, state.create_audience(AUDIENCE)


class WorkbooksMailchimpDemo(WorkbooksDemo):
    title = "Workbooks CRM and Mailchimp, both emulated in-process"
    rules = RULES
    secrets = EMULATOR_SECRETS
    explore = (
        "Explore it yourself: `listsync emulate workbooks` and `listsync emulate mailchimp` serve these "
        "emulators on loopback; point a copy of rules/workbooks-mailchimp.toml at them (crm base_url, "
        "esp endpoint) and run `listsync plan` on it."
    )

    def __init__(self) -> None:
        super().__init__()
        self.esp, self.audience = account()

    def esp_transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=create_app(self.esp))

    def prepare_esp(self, unsubscribed: list[str]) -> None:
        for email in unsubscribed:
            member = self.esp.add_member(self.audience, email, "subscribed")
            self.esp.unsubscribe(self.audience, member, SELF, self.esp.now())

    def change_esp(self, subscribed: list[str]) -> list[str]:
        unsubscribed, cleaned = subscribed[:4], subscribed[4]
        for email in unsubscribed:
            self.esp.unsubscribe(self.audience, self._member(email), SELF, self.esp.now())
        member = self._member(cleaned)
        member.status, member.last_changed = "cleaned", self.esp.now()
        tag = max(self.audience.segments.values(), key=lambda segment: len(segment.members))
        sent = self.esp.add_campaign(self.audience.id, "November news", segment_id=tag.id)
        recipients = self.esp.generate_activity(sent.id, SEND)
        did = sent.recipients.values()
        bounces = [r.bounce[0] for r in did if r.bounce is not None]
        return [
            f"{len(unsubscribed)} members unsubscribed from a Mailchimp email",
            f"Mailchimp cleaned {cleaned} after it hard-bounced",
            f"Mailchimp sent {sent.title!r} to {recipients} members tagged {tag.name!r}: "
            f"{sum(len(r.opens) for r in did)} opens, {sum(len(r.clicks) for r in did)} clicks, "
            f"{len(bounces)} bounces ({bounces.count('hard')} hard, which cleans the member), "
            f"{sum(1 for r in did if r.unsubscribed)} unsubscribes",
        ]

    def _member(self, email: str) -> Member:
        return self.esp.member(self.audience, email)


KIT = WorkbooksMailchimpDemo()
