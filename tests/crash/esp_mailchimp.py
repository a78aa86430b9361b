"""Mailchimp in the crash test: `rules/workbooks-mailchimp.toml` on `listsync emulate mailchimp`,
whose one audience (its id read from the emulator's dump) the rules name.

Opted out: a member unsubscribed or cleaned, whom Mailchimp never lets an API call subscribe again.
Jobs: the tag batches, ``batch:<id>`` as the adapter names them (upserts and opt-outs are batch
subscribes, answered at once). A person unsubscribes with ``PUT /3.0/lists/{id}/members/{hash}``,
``status`` unsubscribed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property

import httpx

from adapters.mailchimp.client import MailchimpClient
from adapters.mailchimp.memberships import BATCH
from tests.crash.esp import CrashEsp, Dump

OUT = frozenset({"unsubscribed", "cleaned"})


class MailchimpCrash(CrashEsp):
    name = "mailchimp"
    title = "Mailchimp"
    rule_file = "workbooks-mailchimp.toml"
    jobs_named = "tag batches"
    running = frozenset({"pending", "preprocessing", "started", "finalizing"})

    @cached_property
    def audience(self) -> str:
        """The id of the emulator's one audience."""
        [audience] = self.emulator.control("state")["audiences"]
        return str(audience["id"])

    def rules_edits(self) -> dict[str, str]:
        audience = f'endpoint = "{self.emulator.url}"\naudience = "{self.audience}"'
        return {'audience = "Workbooks Contacts"': audience}

    def secrets(self) -> dict[str, str]:
        return {"MAILCHIMP_API_KEY": self.emulator.said("API key")}

    @asynccontextmanager
    async def _api(self) -> AsyncIterator[MailchimpClient]:
        async with httpx.AsyncClient(base_url=self.emulator.url, timeout=30) as http:
            yield MailchimpClient(http, api_key=self.emulator.said("API key"))

    async def unsubscribe(self, email: str) -> int:
        async with self._api() as api:
            await api.upsert_member(self.audience, email, {"status": "unsubscribed"})
        return 1

    async def poll(self, job: str) -> None:
        async with self._api() as api:
            await api.batch(job.removeprefix(BATCH))

    def unsubscribed(self, esp: Dump) -> set[str]:
        return {str(m["email"]).lower() for m in _members(esp) if m["status"] in OUT}

    def mailable(self, esp: Dump) -> set[str]:
        return {str(m["email"]).lower() for m in _members(esp) if m["status"] == "subscribed" and m["tags"]}

    def addresses(self, esp: Dump) -> list[str]:
        return [str(m["email"]).lower() for m in _members(esp)]

    def jobs(self, esp: Dump) -> dict[str, str]:
        return {f"{BATCH}{b['id']}": str(b["status"]) for b in esp["batches"]}

    def synced(self, esp: Dump, mapped: set[str]) -> Dump:
        """Flattened, so that a difference names the member or tag: each audience's members, tags and
        merge fields carry its name."""
        parts: Dump = {"audiences": [], "members": [], "tags": [], "merge_fields": []}
        for audience in esp["audiences"]:
            parts["audiences"].append({k: v for k, v in audience.items() if k not in parts})
            for part in ("members", "tags", "merge_fields"):
                parts[part] += [{**item, "audience": audience["name"]} for item in audience[part]]
        parts["members"] = [
            {**m, "merge_fields": {k: v for k, v in m["merge_fields"].items() if k in mapped}}
            for m in parts["members"]
        ]
        return parts


def _members(esp: Dump) -> list[Dump]:
    """Every member of the account's audiences (the emulator serves one)."""
    return [member for audience in esp["audiences"] for member in audience["members"]]
