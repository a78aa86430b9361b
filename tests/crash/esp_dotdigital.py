"""Dotdigital in the crash test: `rules/workbooks-dotdigital.toml` on `listsync emulate dotdigital`.

Opted out: a contact whose status is not Subscribed, or a suppressed address. Jobs: v2 imports by
their id, v3 imports that create contacts unsubscribed as ``unsubscribe-import:<id>``, and contact
deletions as ``deletion:<id>``, as the adapter names them. A person unsubscribes with
``POST /v2/contacts/unsubscribe``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from adapters.dotdigital.adapter import DELETION, UNSUBSCRIBE_IMPORT
from adapters.dotdigital.client import DotdigitalClient
from tests.crash.esp import CrashEsp, Dump


class DotdigitalCrash(CrashEsp):
    name = "dotdigital"
    title = "Dotdigital"
    rule_file = "workbooks-dotdigital.toml"
    jobs_named = "import and deletion jobs"
    running = frozenset({"NotFinished", "Processing", "Pending", "Started"})

    def rules_edits(self) -> dict[str, str]:
        return {
            "apiuser-xxxx@apiconnector.com": self.emulator.said("API user"),
            "address_book_limit = 100": f'address_book_limit = 100\nendpoint = "{self.emulator.url}"',
            "calls = 2000 ": "calls = 1000000 ",
            "burst = 20\n": "burst = 1000\n",
        }

    def secrets(self) -> dict[str, str]:
        return {"DOTDIGITAL_PASSWORD": self.emulator.said("password")}

    @asynccontextmanager
    async def _api(self) -> AsyncIterator[DotdigitalClient]:
        user, password = self.emulator.said("API user"), self.emulator.said("password")
        async with httpx.AsyncClient(base_url=self.emulator.url, timeout=30) as http:
            yield DotdigitalClient(http, user=user, password=password)

    async def unsubscribe(self, email: str) -> int:
        async with self._api() as api:
            await api.unsubscribe(email)
        return 1

    async def poll(self, job: str) -> None:
        async with self._api() as api:
            if job.startswith(UNSUBSCRIBE_IMPORT):
                await api.v3_import_status(job.removeprefix(UNSUBSCRIBE_IMPORT))
            elif job.startswith(DELETION):
                await api.deletion_status(job.removeprefix(DELETION))
            else:
                await api.import_status(job)

    def unsubscribed(self, esp: Dump) -> set[str]:
        contacts = {str(c["email"]).lower() for c in esp["contacts"] if c["status"] != "Subscribed"}
        return contacts | {str(s["email"]).lower() for s in esp["suppressions"]}

    def mailable(self, esp: Dump) -> set[str]:
        in_books = {email for book in esp["address_books"] for email in book["members"]}
        return {
            str(c["email"]).lower()
            for c in esp["contacts"]
            if c["status"] == "Subscribed" and str(c["email"]) in in_books
        }

    def addresses(self, esp: Dump) -> list[str]:
        return [str(c["email"]).lower() for c in esp["contacts"]]

    def jobs(self, esp: Dump) -> dict[str, str]:
        imports = {
            (f"{UNSUBSCRIBE_IMPORT}{j['id']}" if j["api"] == "v3" else str(j["id"])): str(j["status"])
            for j in esp["imports"]
        }
        return imports | {f"{DELETION}{d['id']}": str(d["status"]) for d in esp["deletions"]}

    def synced(self, esp: Dump, mapped: set[str]) -> Dump:
        kept = {k: v for k, v in esp.items() if k not in ("imports", "deletions")}
        kept["contacts"] = [
            {**c, "data": {k: v for k, v in c["data"].items() if k in mapped}} for c in esp["contacts"]
        ]
        return kept
