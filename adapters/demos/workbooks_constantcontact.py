"""The Workbooks to Constant Contact demo (`listsync demo --esp constant-contact`):
`rules/workbooks-constantcontact.toml` over the Workbooks and Constant Contact emulators, telling the
story of `workbooks_kit`.

Constant Contact's part: 25 people had unsubscribed there before the first sync, most by themselves
(``opt_out_source`` Contact, whom Constant Contact never lets the account re-add) and some by an admin
(Account); between syncs 4 contacts unsubscribe themselves, an admin unsubscribes one more, and a
campaign goes to the largest campaign list with opens, clicks, bounces (each with its bounce code)
and opt-outs. For real, a person grants listsync access once with `listsync auth constant-contact
RULES`, which keeps the grant in the rule set's state store; here the emulator issues one (`grant`)
and the demo stores it there under the rule set's name and side; the end-to-end tests do the same.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import httpx

from adapters.constantcontact.activity import HARD_BOUNCES
from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import SendShares
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs
from adapters.demos import REPO
from adapters.demos.workbooks_crm import SECRETS
from adapters.demos.workbooks_kit import SEED, WorkbooksDemo
from engine.contract import OAuthTokens

RULES = REPO / "rules" / "workbooks-constantcontact.toml"
MASTER = "All Workbooks Contacts"  # the rules' [lists] master
SCOPES = "contact_data campaign_data offline_access"
REPLACEMENTS = {"your-constant-contact-api-key": Knobs().client_id}
EMULATOR_SECRETS = {**SECRETS, "CONSTANT_CONTACT_CLIENT_SECRET": Knobs().client_secret}
# Gentler than the generator's default, which opts out more than the rules' 5% safety share of a list.
SEND = SendShares(bounce=0.03, open=0.45, click=0.35, optout=0.01)


def grant(state: ConstantContactState) -> OAuthTokens:
    """A grant the emulator issued, as `listsync auth constant-contact` gets one from Constant
    Contact's authorization server (and keeps in the rule set's state store)."""
    issued = state.grants.issue(SCOPES)
    expires_at = time.time() + float(str(issued["expires_in"]))
    return OAuthTokens(str(issued["access_token"]), str(issued["refresh_token"]), expires_at)


def account() -> ConstantContactState:
    """An empty account whose call budget is not enforced (the rules' budget is lifted too) and whose
    bulk activities finish at their first poll."""
    knobs = Knobs(rate_limited=False, activity_polls=0)
    return ConstantContactState(knobs, seed=SEED, started_at=datetime.now(UTC))


class WorkbooksConstantContactDemo(WorkbooksDemo):
    title = "Workbooks CRM and Constant Contact, both emulated in-process"
    rules = RULES
    replacements = REPLACEMENTS
    secrets = EMULATOR_SECRETS
    explore = (
        "Explore it yourself: `listsync emulate workbooks` and `listsync emulate constant-contact` serve "
        "these emulators on loopback; point a copy of rules/workbooks-constantcontact.toml at them (crm "
        "base_url; esp api_url, auth_url and the client id they print, with their client secret in "
        "CONSTANT_CONTACT_CLIENT_SECRET), authorise it with `listsync auth constant-contact COPY` (the "
        "emulator consents at once, as a person would), and run `listsync plan` on it."
    )

    def __init__(self) -> None:
        super().__init__()
        self.esp = account()

    def esp_transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=create_app(self.esp))

    def esp_grant(self) -> OAuthTokens:
        return grant(self.esp)

    def prepare_esp(self, unsubscribed: list[str]) -> None:
        for number, email in enumerate(unsubscribed):
            source = "Account" if number % 5 == 4 else "Contact"
            self.esp.unsubscribe(self.esp.add_contact(email), source, "before listsync ran")

    def change_esp(self, subscribed: list[str]) -> list[str]:
        themselves, by_admin = subscribed[:4], subscribed[4]
        for email in themselves:
            self._unsubscribe(email, "Contact")
        self._unsubscribe(by_admin, "Account")
        campaign_lists = [x for x in self.esp.lists.values() if x.name != MASTER]
        target = max(campaign_lists, key=lambda x: self.esp.members(x.id))
        sent = self.esp.add_campaign("November news", list_ids=[target.id])
        recipients = self.esp.generate_activity(sent.id, SEND)
        kinds = Counter(event.kind for event in sent.tracking)
        codes = sorted({str(e.bounce_code) for e in sent.tracking if e.kind == "em_bounces"})
        hard = [code for code in codes if code in HARD_BOUNCES]
        return [
            f"{len(themselves)} contacts unsubscribed themselves in Constant Contact (source Contact)",
            f"an admin unsubscribed {by_admin} in Constant Contact (source Account)",
            f"Constant Contact sent {sent.name!r} to {recipients} members of {target.name!r}: "
            f"{kinds['em_opens']} opens, {kinds['em_clicks']} clicks, {kinds['em_bounces']} bounces "
            f"(codes {', '.join(codes) or 'none'}; {', '.join(hard) or 'none'} hard), "
            f"{kinds['em_optouts']} opt-outs",
        ]

    def _unsubscribe(self, email: str, source: str) -> None:
        contact = self.esp.contact_by_email(email)
        if contact is None:
            raise LookupError(f"{email} is not in the Constant Contact account")
        self.esp.unsubscribe(contact, source, "no longer interested")


KIT = WorkbooksConstantContactDemo()
