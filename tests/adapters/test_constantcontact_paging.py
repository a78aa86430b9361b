"""Constant Contact reads while contacts move: its seek cursors let no record slip past a page.

v3 pages by a cursor naming the record the next page starts at (the spec's one example decodes to
``next=<id>``), and the emulator's cursors do the same. The emulator lists contacts in order of
``updated_at``: a contact opted out or deleted while a snapshot pages leaves its place, which with a
cursor holding an offset would move every later contact up a place and hide the one at the page
boundary (read by a full snapshot as deleted).
"""

from __future__ import annotations

import httpx
import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import generate
from tests.adapters.meddling import Meddling, once
from tests.adapters.test_constantcontact_contract import account, opened


def a_later_contact_page(request: httpx.Request) -> bool:
    return request.url.path == "/v3/contacts" and "cursor" in request.url.params


@pytest.mark.asyncio
async def test_contacts_opted_out_or_deleted_during_a_full_read_hide_no_other() -> None:
    state = account()
    generate(state, seed=9, contacts=1200, campaigns=0)
    listed = sorted(state.contacts.values(), key=lambda c: (c.updated_at, c.id))[:500]
    opted, deleted = listed[10:13], listed[20:22]

    def change() -> None:
        for contact in opted:
            state.unsubscribe(contact, "Account")
        for contact in deleted:
            state.delete_contact(contact.id)

    transport = Meddling(httpx.ASGITransport(app=create_app(state)), once(a_later_contact_page, change))
    async with opened(state, transport=transport) as adapter:
        during = await adapter.snapshot()
        after = await adapter.snapshot(during.cursor)
    read = {str(row.email).lower(): row for row in map(during.decode, during.payloads)}
    assert len(read) == len(during.payloads)
    live = {c.email.lower() for c in state.contacts.values() if c.deleted_at is None}
    assert live <= set(read) <= live | {c.email.lower() for c in deleted}
    # Each contact that changed during the read is in the next delta, which starts when this read did.
    changed = {str(row.email).lower(): row for row in map(after.decode, after.payloads)}
    assert {c.email.lower() for c in opted} <= set(changed)
    assert all(changed[c.email.lower()].opted_out for c in opted)
    assert {c.email.lower() for c in deleted} <= set(after.deleted)
