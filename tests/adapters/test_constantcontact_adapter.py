"""The Constant Contact adapter's own behaviour over the emulator: consent both ways, imports cut under
4 MB, activities polled to every terminal state, the queued-activity cap, OAuth tokens, and pacing."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from adapters.constantcontact import wire
from adapters.constantcontact.adapter import SELF_OPTED_OUT, ConstantContactAdapter
from adapters.constantcontact.emulator import create_app
from engine.budgets import Budgets
from engine.errors import PermanentError
from engine.plans import Change, Op
from engine.ruleset import Limits
from tests.adapters.contract import SEED, AdapterContract
from tests.adapters.meddling import Meddling, once
from tests.adapters.test_constantcontact_contract import MemoryTokens, account, grant, opened, write
from tests.support import Stamped, most_in_a_window


@pytest.mark.asyncio
async def test_a_contacts_own_opt_out_shows_in_the_snapshot_and_is_never_re_added() -> None:
    state = account(SEED)
    async with opened(state) as adapter:
        rows = AdapterContract.emails(await adapter.snapshot())
        resubscribe = Op("upsert_contact", "bo@example.com", changes={"opted_out": Change(True, False)})
        outcomes = await write(adapter, "upsert_contact", [resubscribe])
        added = await write(adapter, "add_member", [Op("add_member", "bo@example.com", list="Spring")])
    bo = rows["bo@example.com"]
    assert bo.opted_out and bo.opt_out_reason == "unsubscribed"
    assert outcomes[0].reason == SELF_OPTED_OUT and added[0].reason == SELF_OPTED_OUT
    contact = state.contact_by_email("bo@example.com")
    assert contact is not None and contact.permission == "unsubscribed" and not contact.lists


@pytest.mark.asyncio
async def test_an_account_opt_out_reads_as_admin_and_a_resubscribe_lifts_it() -> None:
    state = account(SEED)
    ada = state.contact_by_email("ada@example.com")
    assert ada is not None
    state.unsubscribe(ada, "Account")
    # The fields that changed while she was opted out come with the resubscribe, and are written too.
    changes = {"opted_out": Change(True, False), "FIRSTNAME": Change("Ada", "Adeline")}
    async with opened(state) as adapter:
        before = AdapterContract.emails(await adapter.snapshot())["ada@example.com"]
        op = Op("upsert_contact", "ada@example.com", changes=changes)
        outcomes = await write(adapter, "upsert_contact", [op])
        after = AdapterContract.emails(await adapter.snapshot())["ada@example.com"]
    assert before.opted_out and before.opt_out_reason == "admin"
    assert outcomes[0].ok and not after.opted_out and after.values["FIRSTNAME"] == "Adeline"
    assert ada.permission == "explicit"


@pytest.mark.asyncio
async def test_an_esp_opt_out_unsubscribes_and_keeps_the_contacts_other_properties() -> None:
    state = account(SEED)
    ada = state.contact_by_email("ada@example.com")
    assert ada is not None
    ada.scalars["first_name"] = "Ada"
    async with opened(state) as adapter:
        outcomes = await write(
            adapter,
            "opt_out_esp",
            [Op("opt_out_esp", "ada@example.com"), Op("opt_out_esp", "bo@example.com")],
        )
    assert all(o.ok for o in outcomes)
    assert ada.permission == "unsubscribed" and ada.opt_out_source == "Account"
    assert ada.scalars == {"first_name": "Ada"} and ada.custom  # a PUT without them would clear them
    bo = state.contact_by_email("bo@example.com")
    assert bo is not None and bo.opt_out_source == "Contact"  # an earlier opt-out keeps its source


@pytest.mark.asyncio
async def test_an_opt_out_of_an_address_made_meanwhile_unsubscribes_the_contact_made() -> None:
    # Found in the crash test's twin world: the processes of a rule set run at once, and two of them
    # opting out one new address each looked it up, found nothing, and POSTed it; the second got a
    # 409 (the address exists) and its opt-out was rejected. A person adding the contact in Constant
    # Contact's app between the lookup and the POST did the same.
    state = account(SEED)

    def made_by_someone_else() -> None:
        state.add_contact("new@example.com")

    created = once(lambda r: r.method == "POST" and r.url.path == "/v3/contacts", made_by_someone_else)
    transport = Meddling(httpx.ASGITransport(app=create_app(state)), created)
    async with opened(state, transport=transport) as adapter:
        [outcome] = await write(adapter, "opt_out_esp", [Op("opt_out_esp", "new@example.com")])
    made = state.contact_by_email("new@example.com")
    assert outcome.ok and made is not None and made.permission == "unsubscribed"


@pytest.mark.asyncio
async def test_an_incremental_snapshot_sees_opt_outs_and_deletions_since_its_cursor() -> None:
    state = account([*SEED, {"email": "cy@example.com", "lists": ["Spring"]}])
    async with opened(state) as adapter:
        first = await adapter.snapshot()
        ada, cy = state.contact_by_email("ada@example.com"), state.contact_by_email("cy@example.com")
        assert ada is not None and cy is not None
        state.unsubscribe(ada, "Contact")
        state.delete_contact(cy.id)
        later = await adapter.snapshot(first.cursor)
    rows = AdapterContract.emails(later)
    assert not later.complete and rows["ada@example.com"].opted_out
    assert list(later.deleted) == ["cy@example.com"] and "cy@example.com" not in rows


def test_a_batch_is_cut_into_import_bodies_under_the_four_megabytes_read() -> None:
    rows = [{"email": f"person{n:06}@example.com", "cf:NOTE": "x" * 200} for n in range(40_000)]
    runs = wire.split_for_import(rows, ["1f0e3c1a-0000-4000-8000-000000000000"])
    sizes = [len(wire.import_body(run, ["1f0e3c1a-0000-4000-8000-000000000000"])) for run in runs]
    assert len(runs) == 3 and sum(map(len, runs)) == len(rows)
    assert max(sizes) <= wire.MAX_IMPORT_BYTES < 4 * 1024 * 1024
    assert sizes[0] > wire.MAX_IMPORT_BYTES - 300  # full, not cautious


class _Bodies(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.imports = inner, list[int]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("contacts_json_import"):
            self.imports.append(len(request.content))
        return await self.inner.handle_async_request(request)


@pytest.mark.asyncio
async def test_upserts_go_out_in_several_imports_when_one_would_pass_the_limit() -> None:
    state = account(SEED, max_import_bytes=3000)
    transport = _Bodies(httpx.ASGITransport(app=create_app(state)))
    ops = [
        Op("upsert_contact", f"p{n:02}@example.com", changes={"FIRSTNAME": Change(None, "y" * 30)})
        for n in range(60)
    ]
    async with opened(state, transport=transport, max_import_bytes=3000) as adapter:
        outcomes = await adapter.write("upsert_contact", ops)
        assert len({o.job for o in outcomes}) == len(transport.imports) > 1
        final = await write(adapter, "upsert_contact", ops)
    assert all(o.ok for o in final) and max(transport.imports) <= 3000
    assert all(state.contact_by_email(f"p{n:02}@example.com") is not None for n in range(60))


@pytest.mark.parametrize("ending", ["completed", "failed", "cancelled", "timed_out"])
@pytest.mark.asyncio
async def test_an_activity_is_polled_to_its_terminal_state(ending: str) -> None:
    state = account(SEED, activity_polls=2, activity_outcome=ending)
    ops = [Op("upsert_contact", "ada@example.com", changes={"FIRSTNAME": Change("Ada", "Adah")}),
           Op("upsert_contact", "new@example.com", changes={"NOPE": Change(None, "x")})]  # fmt: skip
    async with opened(state) as adapter:
        submitted = await adapter.write("upsert_contact", ops)
        job = submitted[0].job
        assert job is not None and submitted[1].job == job
        states = []
        for _ in range(5):
            status = await adapter.poll(job, ops)
            states.append(status.state)
            if status.terminal:
                break
    assert states[:2] == ["processing", "processing"] and states[-1] == ending and status.terminal
    if ending == "completed":
        assert status.outcomes[0].ok and not status.outcomes[1].ok
        assert status.outcomes[1].reason == "custom field 'NOPE' does not exist"
    else:
        assert not any(o.ok for o in status.outcomes) and ending in (status.outcomes[0].reason or "")


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_full_activity_queue_is_waited_out() -> None:
    state = account(SEED, max_queued_activities=1, activity_polls=0, activity_stalls=True)
    loop = asyncio.get_running_loop()
    state.clock = loop.time
    first = state.submit("contact_delete", {"contact_ids": []})

    async def finish_later() -> None:
        await asyncio.sleep(90)
        first.stalled = False
        state.poll_activity(first.id)

    async with opened(state) as adapter:
        started = loop.time()
        helper = asyncio.create_task(finish_later())
        outcomes = await adapter.write("add_member", [Op("add_member", "ada@example.com", list="Spring")])
        await helper
    assert outcomes[0].job is not None and loop.time() - started >= 90


@pytest.mark.asyncio
async def test_tokens_are_refreshed_before_they_expire_and_after_a_401() -> None:
    state = account(SEED)
    tokens = grant(state, expires_in=60)  # inside the refresh margin
    old = tokens.tokens
    async with opened(state, tokens) as adapter:
        await adapter.version()
        assert tokens.saves == 1 and old is not None and tokens.tokens is not None
        assert old.refresh_token not in state.grants.refresh  # rotated: the old one is spent
        assert tokens.tokens.refresh_token in state.grants.refresh
        state.grants.expire_access()
        await adapter.version()
        assert tokens.saves == 2
        assert tokens.tokens is not None and state.grants.valid(tokens.tokens.access_token)
        assert tokens.tokens.expires_at > time.time() + 86_000


@pytest.mark.asyncio
async def test_a_revoked_grant_stops_the_run_and_says_to_run_listsync_auth() -> None:
    state = account(SEED)
    tokens = grant(state)
    state.grants.revoke_all()
    async with opened(state, tokens) as adapter:
        with pytest.raises(PermanentError, match="listsync auth constant-contact") as raised:
            await adapter.snapshot()
    assert tokens.tokens is not None
    text = str(raised.value) + repr(adapter) + repr(tokens.tokens)
    for secret in (tokens.tokens.access_token, tokens.tokens.refresh_token, state.knobs.client_secret):
        assert secret not in text


@pytest.mark.asyncio
async def test_without_a_stored_grant_the_adapter_asks_for_listsync_auth() -> None:
    async with opened(account(SEED), MemoryTokens(None)) as adapter:
        with pytest.raises(PermanentError, match="listsync auth constant-contact"):
            await adapter.version()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_calls_are_paced_to_four_a_second_and_never_meet_a_429() -> None:
    state = account(rate_limited=True)
    loop = asyncio.get_running_loop()
    state.clock = loop.time
    state.second = (0, 0)
    for n in range(1200):
        state.add_contact(f"c{n:04}@example.com")
    capabilities = ConstantContactAdapter.capabilities(
        {"client_id": "x", "client_secret": {"env": "X"}}, "esp"
    )
    budget = Budgets().for_account("cc", Limits(), capabilities)
    transport = Stamped(httpx.ASGITransport(app=create_app(state)))
    async with opened(state, budget=budget, transport=transport) as adapter:
        for _ in range(3):
            snapshot = await adapter.snapshot()  # any 429 would raise here
    assert len(snapshot.payloads) == 1200 and len(transport.stamps) >= 30
    assert most_in_a_window(transport.stamps, 1.0) <= 4
    assert all(code != 429 for _, _, code in state.calls)
