"""`listsync emulate workbooks` and `listsync emulate dotdigital`, given one seed and size, tell one
story: the Dotdigital account is one an earlier sync of `rules/workbooks-dotdigital.toml` filled from
that CRM, since when some of its contacts opted out or bounced and campaigns went to its books. The
shipped rules pointed at both (in-process, over `httpx.ASGITransport`) carry the ESP's opt-outs,
bounces and activity back to CRM people and campaigns."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine.applying
from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.emulating import sandbox
from engine.planning import make_plan
from engine.plans import Plan
from engine.ruleset import ProcessName
from engine.session import open_sync
from tests.workbooks_world import dotdigital_rules

pytestmark = pytest.mark.asyncio
SEED, CONTACTS = 4, 300
PERSON_EMAIL, LEAD_EMAIL = "main_location[email]", "org_lead_party[main_location[email]]"
App = Callable[..., Any]


def served(name: str, base_url: str, contacts: int = CONTACTS) -> App:
    """The app `listsync emulate NAME --seed SEED --contacts N` serves (with no vendor call limits)."""
    app, _ = sandbox(name)(base_url=base_url, seed=SEED, contacts=contacts, unlimited=True)
    return app


async def dump(app: App) -> dict[str, Any]:
    """The emulator's state, as `GET /_emulator/state` answers a loopback client."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        answer = await c.get("/_emulator/state")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


class Crm:
    """What a test compares in the Workbooks sandbox's dump: people and leads by email (those whose
    email no other record shares), and the open campaigns by name."""

    def __init__(self, dumped: dict[str, Any]) -> None:
        records = [(p, PERSON_EMAIL, "no_email_soliciting") for p in dumped["people"]]
        records += [(lead, LEAD_EMAIL, "org_lead_party[no_email_soliciting]") for lead in dumped["leads"]]
        emails = Counter(str(r.get(column) or "").strip().lower() for r, column, _ in records)
        self.opted_out = {
            email: bool(record[opt_out])
            for record, column, opt_out in records
            if emails[email := str(record.get(column) or "").strip().lower()] == 1 and "@" in email
        }
        self.open = {c["name"]: c for c in dumped["campaigns"] if c["record_state"] == "open"}
        self.memberships = dumped["campaign_memberships"]
        self.activities = dumped["online_activities"]

    def books_of(self, email: str) -> set[str]:
        """The books the rules put a member in: the public names of the open campaigns it is in,
        but those whose membership status is Unsubscribed."""
        return {
            self.open[m["campaign"]]["cf_marketing_campaign_public_name"]
            for m in self.memberships
            if str(m["member"] or "").strip().lower() == email
            and m["campaign"] in self.open
            and m["status"] != "Unsubscribed"
        }


async def test_the_dotdigital_sandbox_holds_the_workbooks_sandboxs_people_in_its_campaigns_books() -> None:
    crm = Crm(await dump(served("workbooks", "https://secure.workbooks.com")))
    esp = await dump(served("dotdigital", "https://r1-api.dotdigital.com"))
    emails = [str(c["email"]).lower() for c in esp["contacts"]]
    from_crm = [email for email in emails if email in crm.opted_out]
    assert len(emails) == CONTACTS  # --contacts keeps its meaning: the account's contacts
    assert len(from_crm) == round(CONTACTS * 0.85) and len(emails) > len(from_crm)  # and some of its own
    public = {c["cf_marketing_campaign_public_name"] for c in crm.open.values()}
    books = {b["name"]: set(map(str.lower, b["members"])) for b in esp["address_books"]}
    assert public < set(books)  # named as the rules' template names them, beside books of its own
    for email in from_crm:
        assert {name for name in public if email in books[name]} == crm.books_of(email), email
    assert sum(len(crm.books_of(email)) for email in from_crm) > CONTACTS / 2
    suppressed = {str(s["email"]).lower(): s["reason"] for s in esp["suppressions"]}
    # The CRM's opt-outs were carried over; other CRM people opted out or bounced here since.
    assert all(suppressed.get(email) for email in from_crm if crm.opted_out[email])
    unknown = {email: reason for email, reason in suppressed.items() if not crm.opted_out.get(email, True)}
    assert {"Unsubscribed", "HardBounced"} <= set(unknown.values())
    assert {"FIRSTNAME", "LASTNAME", "INTERESTS", "LEADSCORE"} <= {f["name"] for f in esp["data_fields"]}


async def test_the_dotdigital_sandbox_keeps_contacts_zero_an_empty_account() -> None:
    esp = await dump(served("dotdigital", "https://r1-api.dotdigital.com", contacts=0))
    assert esp["contacts"] == [] and esp["address_books"] == []


class Sandboxes:
    """Both sandboxes, and syncs of the shipped rules between them, as a person would run them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
        self.rules = dotdigital_rules(root, monkeypatch)
        self.crm = served("workbooks", "https://secure.workbooks.com")
        self.esp = served("dotdigital", "https://r1-api.dotdigital.com")

    @asynccontextmanager
    async def sync(self) -> AsyncIterator[Any]:
        extras = {
            "crm_transport": httpx.ASGITransport(app=self.crm),
            "esp_transport": httpx.ASGITransport(app=self.esp),
        }
        async with open_sync(self.rules, budgets=Budgets(enabled=False), extras=extras) as sync:
            yield sync

    async def plan(self, process: ProcessName | None = None) -> Plan:
        async with self.sync() as sync:
            return await make_plan(sync, process=process)

    async def apply(self, process: ProcessName) -> Plan:
        async with self.sync() as sync:
            plan = await make_plan(sync, process=process)
            report = await apply_plan(sync, plan)
        assert not report.rejected and not report.pending, report.reasons
        return plan


@pytest.mark.timeout(120)
async def test_the_shipped_rules_carry_esp_opt_outs_bounces_and_activity_to_crm_people(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = Sandboxes(tmp_path, monkeypatch)
    crm = Crm(await dump(world.crm))
    esp = await dump(world.esp)
    suppressed = {str(s["email"]).lower(): s["reason"] for s in esp["suppressions"]}
    plan = await world.plan()
    kinds = Counter(op.kind for op in plan.ops)
    assert not kinds["create_list"] and not kinds["create_field"]  # the earlier sync made them
    opted_out = {str(op.email) for op in plan.ops if op.kind == "opt_out_crm"}
    assert opted_out == {e for e, reason in suppressed.items() if crm.opted_out.get(e) is False}
    assert len(opted_out) > 10
    bounced = {str(op.email) for op in plan.ops if op.kind == "mark_undeliverable_crm"}
    assert bounced and all(suppressed[email] == "HardBounced" for email in bounced)

    # The activity process may run first, as the service's first runs may: the people it records
    # activity for are those the plan syncs, not only those synced before, or the first run's
    # events would be passed by the cursor and lost.
    activity = await world.apply("activity")
    await world.apply("members")
    await world.apply("contacts")
    after = Crm(await dump(world.crm))
    assert all(after.opted_out[email] for email in opted_out)
    events = [op for op in activity.ops if op.kind == "record_activity" and op.email]
    campaign_keys = {str(c["id"]): name for name, c in crm.open.items()}
    assert {str(op.list) for op in events} <= set(campaign_keys) and len(events) > 20
    assert {"open", "click"} <= {str(op.changes["type"].new) for op in events}
    recorded = after.activities
    assert len(recorded) == len(events)
    assert {a["campaign"] for a in recorded} == {campaign_keys[str(op.list)] for op in events}
    assert {str(a["member"]).lower() for a in recorded} <= set(crm.opted_out)
    # Nothing is recorded twice, and nothing is left to do.
    again = await world.apply("activity")
    assert not [op for op in again.ops if op.kind == "record_activity" and op.email]
    assert (await world.plan()).ops == ()
