"""Constant Contact in the crash test: `rules/workbooks-constantcontact.toml` on `listsync emulate
constant-contact`.

The service's grant comes as a person gets one: `listsync auth constant-contact RULES --paste`, with
the harness as the browser (it opens the printed authorize URL, where the emulator consents at once,
and pastes back the address it was redirected to); the grant lands in the rule set's state store.
The harness's own edits use the access token the emulator printed on starting.

Opted out: ``permission_to_send`` unsubscribed. Jobs: bulk activities by their id, as the adapter
names them. A person unsubscribes with ``PUT /v3/contacts/{id}`` (``update_source`` Contact: they did
it themselves, so Constant Contact never lets the account re-add them), after reading the contact,
since a PUT clears the properties it is not given.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from adapters.constantcontact.rows import STANDARD_FIELDS
from tests.crash.esp import CrashEsp, Dump
from tests.crash.subprocesses import REPO, listsync

MASTER = "All Workbooks Contacts"  # the rules' master list, which every synced contact joins


class ConstantContactCrash(CrashEsp):
    name = "constant-contact"
    title = "Constant Contact"
    rule_file = "workbooks-constantcontact.toml"
    jobs_named = "bulk activities"
    running = frozenset({"initialized", "processing"})

    def rules_edits(self) -> dict[str, str]:
        url = self.emulator.url
        return {
            'client_id = "your-constant-contact-api-key"': (
                f'api_url = "{url}"\nauth_url = "{url}/oauth2/default/v1"\n'
                f'client_id = "{self.emulator.said("client id")}"'
            ),
            "calls = 4 ": "calls = 1000000 ",
            "daily_calls = 10000 ": "daily_calls = 1000000000 ",
        }

    def secrets(self) -> dict[str, str]:
        return {"CONSTANT_CONTACT_CLIENT_SECRET": self.emulator.said("client secret")}

    def authorise(self, rules: Path, env: dict[str, str]) -> None:
        command = listsync("auth", "constant-contact", str(rules), "--paste", "--timeout", "60")
        with self.emulator.without_faults():  # a person signing in retries by hand; not under test here
            process = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **env},
            )
            assert process.stdout is not None
            url = next((line.strip() for line in process.stdout if "/authorize?" in line), None)
            if url is None:
                process.kill()
                raise RuntimeError(f"listsync auth printed no authorize URL: {process.communicate()[1]}")
            consented = httpx.get(url, follow_redirects=False, timeout=30)
            if consented.status_code != 302:
                process.kill()
                raise RuntimeError(f"the emulator's consent page answered {consented.status_code}")
            said, errors = process.communicate(consented.headers["location"] + "\n", timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"listsync auth constant-contact exited {process.returncode}: {errors}{said}")

    def _api(self) -> httpx.AsyncClient:
        """The v3 API, with the access token the emulator printed."""
        token = self.emulator.said("access token")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return httpx.AsyncClient(base_url=self.emulator.url, headers=headers, timeout=30)

    async def unsubscribe(self, email: str) -> int:
        async with self._api() as http:
            found = await http.get("/v3/contacts", params={"email": email, "status": "all"})
            [contact] = found.raise_for_status().json()["contacts"]
            body = {name: contact[name] for name in STANDARD_FIELDS if contact.get(name)}
            body["email_address"] = {"address": email, "permission_to_send": "unsubscribed"}
            body["update_source"] = "Contact"
            put = await http.put(f"/v3/contacts/{contact['contact_id']}", json=body)
            put.raise_for_status()
        return 2

    async def poll(self, job: str) -> None:
        async with self._api() as http:
            (await http.get(f"/v3/activities/{job}")).raise_for_status()

    def unsubscribed(self, esp: Dump) -> set[str]:
        return {str(c["email"]).lower() for c in esp["contacts"] if c["permission"] == "unsubscribed"}

    def mailable(self, esp: Dump) -> set[str]:
        return {
            str(c["email"]).lower()
            for c in esp["contacts"]
            if c["permission"] != "unsubscribed" and not c["deleted"] and set(c["lists"]) - {MASTER}
        }

    def addresses(self, esp: Dump) -> list[str]:
        return [str(c["email"]).lower() for c in esp["contacts"]]

    def jobs(self, esp: Dump) -> dict[str, str]:
        return {str(a["id"]): str(a["state"]) for a in esp["activities"]}

    def synced(self, esp: Dump, mapped: set[str]) -> Dump:
        kept = {k: v for k, v in esp.items() if k != "activities"}
        kept["contacts"] = [
            {
                **c,
                "properties": {k: v for k, v in c["properties"].items() if k in mapped},
                "custom_fields": {k: v for k, v in c["custom_fields"].items() if k in mapped},
            }
            for c in esp["contacts"]
        ]
        return kept
