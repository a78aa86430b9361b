"""The Workbooks side of the vendor demos and their end-to-end tests: a generated CRM, and the edits
people make in it between syncs.

Every Workbooks-to-ESP demo (and its test) needs the same things of the emulated CRM: the people who
can be mailed, a person's record by email, and the edits of the story (opting someone out or back in,
renaming them, taking them off a campaign or marking their membership unsubscribed). They are here
once, on the emulator's own state, so that a kit only tells what its ESP does.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.workbooks.emulator import create_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState

PEOPLE = "crm/people"
LEADS = "crm/sales_leads"
CAMPAIGNS = "crm/campaigns"
MEMBERSHIPS = "crm/campaign_membership"
ONLINE_ACTIVITIES = "crm/online_activities"
PERSON_EMAIL = "main_location[email]"
LEAD_EMAIL = "org_lead_party[main_location[email]]"
UNSUBSCRIBED = "Unsubscribed"  # the membership status the rules' unsubscribed_statuses name
# The environment variable the rules read the Workbooks API key from, set to the emulator's own.
SECRETS = {"WORKBOOKS_API_KEY": DEFAULT_API_KEY}

Record = dict[str, Any]


class DemoCrm:
    """An emulated Workbooks database, generated from `seed`, with the edits of the demo story."""

    def __init__(self, seed: int, *, people: int, leads: int) -> None:
        self.state = WorkbooksState(seed=seed)
        generate(self.state, seed=seed, people=people, leads=leads)

    def transport(self) -> httpx.AsyncBaseTransport:
        """Routes the CRM side's HTTP to this emulator, in-process."""
        return httpx.ASGITransport(app=create_app(self.state))

    # -- reading --------------------------------------------------------------------------------------
    def subscribed(self) -> list[str]:
        """Emails of people with a usable address of their own who are not opted out, sorted."""
        seen: dict[str, int] = {}
        for record in self.state.live(PEOPLE):
            email = _email(record, PERSON_EMAIL)
            if record.get("no_email_soliciting") or "@" not in email[1:]:
                continue
            seen[email] = 0 if email in seen else 1
        return sorted(email for email, unique in seen.items() if unique)

    def person(self, email: str) -> Record:
        """The live person with this email (compared ignoring case and spaces)."""
        for record in self.state.live(PEOPLE):
            if _email(record, PERSON_EMAIL) == email:
                return record
        raise KeyError(email)

    def person_or_lead(self, email: str) -> Record:
        for controller, column in ((PEOPLE, PERSON_EMAIL), (LEADS, LEAD_EMAIL)):
            for record in self.state.live(controller):
                if _email(record, column) == email:
                    return record
        raise KeyError(email)

    def opted_out(self, email: str) -> bool:
        """The email opt-out of the person or lead with this email."""
        record = self.person_or_lead(email)
        return bool(record.get("no_email_soliciting") or record.get("org_lead_party[no_email_soliciting]"))

    def undeliverable(self, email: str) -> bool:
        """The undeliverable flag of the person's or lead's email."""
        return any(v for k, v in self.person_or_lead(email).items() if "email_address_undeliverable" in k)

    def email_of(self, person_id: int) -> str:
        return _email(self.state.get(PEOPLE, person_id), PERSON_EMAIL)

    def open_memberships(self, email: str) -> list[Record]:
        """The person's live memberships of open campaigns that are not unsubscribed."""
        person = self.person(email)["id"]
        campaigns = self.state.records[CAMPAIGNS]
        return [
            membership
            for membership in self.state.live(MEMBERSHIPS)
            if membership.get("party_or_lead_id") == person
            and membership.get("party_or_lead_type") == "Private::Crm::Person"
            and campaigns.get(int(membership.get("marketing_campaign_id") or 0), {}).get("record_state")
            == "open"
            and self.state.status_name(membership.get("campaign_membership_status_id")) != UNSUBSCRIBED
        ]

    def campaign_list(self, membership: Record) -> str:
        """The list the rules name after a membership's campaign: its public name, else its name."""
        return self.list_of_campaign(int(membership["marketing_campaign_id"]))

    def list_of_campaign(self, campaign_id: int) -> str:
        campaign = self.state.get(CAMPAIGNS, campaign_id)
        return str(campaign.get("cf_marketing_campaign_public_name") or campaign["name"]).strip()

    def open_campaigns(self) -> list[Record]:
        return [c for c in self.state.live(CAMPAIGNS) if c.get("record_state") == "open"]

    def join(self, email: str, campaign_id: int, status: str = "Booked") -> None:
        """Makes the person a member of the campaign, with that membership status."""
        status_id = self.state.statuses_of(campaign_id)[status]
        self.state.insert(MEMBERSHIPS, {
            "marketing_campaign_id": campaign_id, "party_or_lead_id": self.person(email)["id"],
            "party_or_lead_type": "Private::Crm::Person", "campaign_membership_status_id": status_id,
        })  # fmt: skip

    # -- the edits of the story -----------------------------------------------------------------------
    def opt_out(self, email: str, opted_out: bool = True) -> None:
        self.state.update(PEOPLE, self.person(email)["id"], {"no_email_soliciting": opted_out})

    def rename(self, email: str) -> None:
        record = self.person(email)
        self.state.update(PEOPLE, record["id"], {"person_first_name": f"{record['person_first_name']}-Jo"})

    def take_off_campaign(self, membership: Record) -> None:
        self.state.delete(MEMBERSHIPS, membership["id"])

    def unsubscribe_from_campaign(self, membership: Record) -> None:
        """Sets the membership's status to the campaign's `Unsubscribed` status."""
        statuses = self.state.statuses_of(int(membership["marketing_campaign_id"]))
        unsubscribed = {"campaign_membership_status_id": statuses[UNSUBSCRIBED]}
        self.state.update(MEMBERSHIPS, membership["id"], unsubscribed)

    def first_with_membership(self, emails: list[str]) -> tuple[str, Record]:
        """The first of `emails` who is a member of an open campaign (a closed one no longer syncs)."""
        for email in emails:
            memberships = self.open_memberships(email)
            if memberships:
                return email, memberships[0]
        raise LookupError("no subscribed person is a member of an open campaign")


def _email(record: Record, column: str) -> str:
    return str(record.get(column) or "").strip().lower()
