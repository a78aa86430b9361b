"""The Workbooks to Dotdigital demo (`listsync demo`, the default): `rules/workbooks-dotdigital.toml`
over the Workbooks and Dotdigital emulators, telling the story of `workbooks_kit`.

Dotdigital's part: 25 people unsubscribed there before the first sync; between syncs 4 contacts
unsubscribe from an email, one hard-bounces (suppressed as HardBounced), one unsubscribes from one
address book alone, and a campaign goes to the largest address book with opens, clicks, bounces and
unsubscribes. The end-to-end tests
(`tests/test_workbooks_dotdigital_sync.py`) use the same rules and transports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from adapters.demos import REPO, rules_for_emulators
from adapters.demos.workbooks_crm import SECRETS
from adapters.demos.workbooks_kit import SEED, WorkbooksDemo
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_data import ActivityShares
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_state import WorkbooksState

RULES = REPO / "rules" / "workbooks-dotdigital.toml"
API_USER = "apiuser-emulator@apiconnector.com"
REPLACEMENTS = {"apiuser-xxxx@apiconnector.com": API_USER}
# The environment variables the rules read their secrets from, set to the emulators' own values.
EMULATOR_SECRETS = {**SECRETS, "DOTDIGITAL_PASSWORD": Knobs().api_password}


def emulator_rules(target: Path) -> Path:
    """`rules/workbooks-dotdigital.toml` written into `target` for the emulators: the state file beside
    it and the emulator's API user. Its secrets come from `EMULATOR_SECRETS` in the environment."""
    return rules_for_emulators(RULES, target, REPLACEMENTS)


def emulator_transports(crm: WorkbooksState, esp: DotdigitalState) -> dict[str, httpx.AsyncBaseTransport]:
    """`open_sync` extras that route each side's HTTP to its emulator, in-process."""
    return {
        "crm_transport": httpx.ASGITransport(app=workbooks_app(crm)),
        "esp_transport": httpx.ASGITransport(app=dotdigital_app(esp)),
    }


class WorkbooksDotdigitalDemo(WorkbooksDemo):
    title = "Workbooks CRM and Dotdigital, both emulated in-process"
    rules = RULES
    replacements = REPLACEMENTS
    secrets = EMULATOR_SECRETS
    explore = (
        "Explore it yourself: `listsync emulate workbooks` and `listsync emulate dotdigital` serve these "
        "emulators on loopback, the Dotdigital account already holding the CRM's people (give both the "
        "same --seed); point a copy of rules/workbooks-dotdigital.toml at them (crm base_url, esp "
        "endpoint and api_user) and run `listsync plan` on it."
    )

    def __init__(self) -> None:
        super().__init__()
        self.esp = DotdigitalState(Knobs(rate_scheme="none"), seed=SEED, started_at=datetime.now(UTC))

    def esp_transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=dotdigital_app(self.esp))

    def prepare_esp(self, unsubscribed: list[str]) -> None:
        for email in unsubscribed:
            self.esp.unsubscribe(email)

    def change_esp(self, subscribed: list[str]) -> list[str]:
        unsubscribed, bounced = subscribed[:4], subscribed[4]
        for email in unsubscribed:
            self.esp.unsubscribe(email)
        contact = self.esp.contact_by_email(bounced)
        assert contact is not None
        self.esp.suppress(contact, "HardBounced")
        leaver, left = self._leave_a_book(subscribed[5:])
        book = max(self.esp.address_books.values(), key=lambda b: len(self.esp.members(b.id)))
        sent = self.esp.add_campaign("November news", book_ids=[book.id])
        # Gentler than the generator's default, which opts out more than the 5% safety share of a list.
        self.esp.generate_activity(sent.id, ActivityShares(hard_bounce=0.01, unsubscribe=0.01, complaint=0.0))
        opens = sum(len(activity.opens) for activity in sent.activity.values())
        return [
            f"{len(unsubscribed)} contacts unsubscribed from a Dotdigital email",
            f"{bounced}: an email hard-bounced in Dotdigital",
            f"{leaver} unsubscribed from the address book {left!r} alone (a list's own link): listsync "
            "takes it as an opt-out, and never puts them back in that book",
            f"Dotdigital sent {sent.name!r} to {len(sent.activity)} members of {book.name!r}: "
            f"{opens} opens, some clicks, bounces and unsubscribes",
        ]

    def _leave_a_book(self, subscribed: list[str]) -> tuple[str, str]:
        """The first of `subscribed` in an address book unsubscribes from one of its books alone."""
        for email in subscribed:
            contact = self.esp.contact_by_email(email)
            books = self.esp.books_of(contact.id) if contact is not None else []
            if books:
                self.esp.unsubscribe_from_book(books[0].id, email)
                return email, books[0].name
        raise LookupError("no subscribed contact is in an address book")


KIT = WorkbooksDotdigitalDemo()
