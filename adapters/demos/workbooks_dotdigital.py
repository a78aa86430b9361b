"""The Workbooks to Dotdigital demo: both emulators in-process, real rules, a full story.

`listsync demo` (the default) syncs `rules/workbooks-dotdigital.toml` against a generated
Workbooks CRM (people and leads in a few campaigns, some opted out) and a Dotdigital account that
already has some of those people unsubscribed. Between syncs, people change both sides: CRM
opt-outs, ESP unsubscribes, a hard bounce, renamed people, someone taken off a campaign. The
emulators serve over `httpx.ASGITransport`, so nothing listens on a port and no credentials are
needed; the rules' call budget (2,000 calls an hour) is lifted so the demo runs in seconds.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from adapters.demos import fresh_directory
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_data import ActivityShares
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.budgets import Budgets
from engine.contract import DemoSetup

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "workbooks-dotdigital.toml"
API_USER = "apiuser-emulator@apiconnector.com"
PEOPLE = "crm/people"
MEMBERSHIPS = "crm/campaign_membership"


# The environment variables the rules read their secrets from, set to the emulators' own values.
EMULATOR_SECRETS = {"WORKBOOKS_API_KEY": DEFAULT_API_KEY, "DOTDIGITAL_PASSWORD": Knobs().api_password}


def emulator_rules(target: Path) -> Path:
    """`rules/workbooks-dotdigital.toml` written into `target` for the emulators: the state file beside
    it and the emulator's API user. Its secrets come from `EMULATOR_SECRETS` in the environment."""
    rules = target / RULES.name
    text = RULES.read_text().replace("state/workbooks-dotdigital.sqlite3", "state.sqlite3")
    rules.write_text(text.replace("apiuser-xxxx@apiconnector.com", API_USER))
    return rules


def emulator_transports(crm: WorkbooksState, esp: DotdigitalState) -> dict[str, httpx.AsyncBaseTransport]:
    """`open_sync` extras that route each side's HTTP to its emulator, in-process."""
    return {
        "crm_transport": httpx.ASGITransport(app=workbooks_app(crm)),
        "esp_transport": httpx.ASGITransport(app=dotdigital_app(esp)),
    }


class WorkbooksDotdigitalDemo:
    title = "Workbooks CRM and Dotdigital, both emulated in-process"

    def __init__(self) -> None:
        self.crm = WorkbooksState(seed=11)
        self.esp = DotdigitalState(Knobs(rate_scheme="none"), seed=11, started_at=datetime.now(UTC))
        self.rng = random.Random(11)

    @asynccontextmanager
    async def setup(self, directory: Path | None) -> AsyncIterator[DemoSetup]:
        rules = emulator_rules(fresh_directory(directory or REPO / ".demo" / "workbooks-dotdigital"))
        os.environ.update(EMULATOR_SECRETS)  # the emulators' own, for this process only
        generate(self.crm, seed=11, people=1500, leads=400)
        for email in self.rng.sample(self._subscribed(), 25):
            self.esp.unsubscribe(email)  # unsubscribed in Dotdigital before listsync ever ran
        yield DemoSetup(
            rules,
            extras=dict(emulator_transports(self.crm, self.esp)),
            budgets=Budgets(enabled=False),
            explore=(
                "Explore it yourself: `listsync emulate workbooks` and `listsync emulate dotdigital` "
                "serve these emulators on loopback; point a copy of rules/workbooks-dotdigital.toml "
                "at them (crm base_url, esp endpoint) and run `listsync plan` on it."
            ),
        )

    async def change_both_sides(self, directory: Path) -> list[str]:
        subscribed = self._subscribed()
        self.rng.shuffle(subscribed)
        opted_out, unsubscribed, bounced, renamed = (
            subscribed[:5],
            subscribed[5:9],
            subscribed[9],
            subscribed[10:16],
        )
        for email in opted_out:
            self.crm.update(PEOPLE, self._person(email), {"no_email_soliciting": True})
        for email in unsubscribed:
            self.esp.unsubscribe(email)
        contact = self.esp.contact_by_email(bounced)
        assert contact is not None
        self.esp.suppress(contact, "HardBounced")
        for email in renamed:
            record = self.crm.records[PEOPLE][self._person(email)]
            self.crm.update(PEOPLE, record["id"], {"person_first_name": f"{record['person_first_name']}-Jo"})
        membership, leaver = self._open_membership(subscribed[16:])
        self.crm.delete(MEMBERSHIPS, membership)
        book = max(self.esp.address_books.values(), key=lambda b: len(self.esp.members(b.id)))
        sent = self.esp.add_campaign("November news", book_ids=[book.id])
        # Gentler than the generator's default, which opts out more than the 5% safety share of a list.
        self.esp.generate_activity(sent.id, ActivityShares(hard_bounce=0.01, unsubscribe=0.01, complaint=0.0))
        opens = sum(len(activity.opens) for activity in sent.activity.values())
        return [
            f"the CRM opted out {len(opted_out)} people (no email soliciting)",
            f"{len(unsubscribed)} contacts unsubscribed from a Dotdigital email",
            f"{bounced}: an email hard-bounced in Dotdigital",
            f"the CRM renamed {len(renamed)} people (FIRSTNAME follows the CRM)",
            f"{leaver} was taken off an open campaign in the CRM",
            f"Dotdigital sent {sent.name!r} to {len(sent.activity)} members of {book.name!r}: "
            f"{opens} opens, some clicks, bounces and unsubscribes",
        ]

    async def settle_conflicts(self, directory: Path) -> list[str]:
        return []  # these rules give every field one direction: no conflict can be parked

    def _open_membership(self, emails: list[str]) -> tuple[int, str]:
        """The id of a live membership of one of `emails` in an open campaign (a closed campaign no
        longer syncs), and whose it is."""
        campaigns = self.crm.records["crm/campaigns"]
        for email in emails:
            person = self._person(email)
            for membership in self.crm.records[MEMBERSHIPS].values():
                campaign = campaigns.get(int(membership.get("marketing_campaign_id") or 0), {})
                if (
                    membership.get("party_or_lead_id") == person
                    and not membership.get("is_deleted")
                    and campaign.get("record_state") == "open"
                    and membership.get("campaign_membership_status[status]") != "Unsubscribed"
                ):
                    return int(membership["id"]), email
        raise LookupError("no subscribed person is a member of an open campaign")

    def _subscribed(self) -> list[str]:
        """Emails of people with a usable address who are not opted out in the CRM."""
        seen: dict[str, int] = {}
        for record in self.crm.records[PEOPLE].values():
            email = str(record.get("main_location[email]") or "").strip().lower()
            if record.get("is_deleted") or record.get("no_email_soliciting") or "@" not in email[1:]:
                continue
            seen[email] = 0 if email in seen else 1
        return sorted(email for email, unique in seen.items() if unique)

    def _person(self, email: str) -> int:
        for record in self.crm.records[PEOPLE].values():
            if str(record.get("main_location[email]", "")).strip().lower() == email and not record.get(
                "is_deleted"
            ):
                return int(record["id"])
        raise KeyError(email)


KIT = WorkbooksDotdigitalDemo()
