"""The files demo kit: believable CRM and ESP data on disk, and a round of edits on both sides.

Used by `listsync demo --esp files`. The data is generated from a fixed seed, so every run of the
demo shows the same story: an initial sync of a CRM with people and leads in three campaigns (one
closed) against an ESP that already knows some of them, then opt-outs, unsubscribes, field edits,
a conflict, a removal from a campaign and a resubscribe the rules refuse; then the conflict is
settled by hand.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from adapters.demos import fresh_directory
from adapters.files import jsonl
from engine.contract import DemoSetup

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "demo-files.toml"
FIRST = [
    "Ada",
    "Bo",
    "Cy",
    "Dee",
    "Eli",
    "Fay",
    "Gus",
    "Hal",
    "Ivy",
    "Jo",
    "Kit",
    "Lu",
    "Max",
    "Nia",
    "Oz",
]
LAST = [
    "Adams",
    "Baker",
    "Clark",
    "Dunn",
    "Evans",
    "Ford",
    "Grant",
    "Hale",
    "Irwin",
    "Jones",
    "King",
]
CITIES = ["Leeds", "York", "Bath", "Derby", "Hull", "Ely", "Truro", "Wells"]
COMPANIES = ["Acme Ltd", "Globex", "Initech", "Umbrella", "Stark plc", "Wayne & Co"]
CONFLICTED = 50
CAMPAIGNS = [
    {"key": "C-1", "name": "Spring Newsletter", "status": "open"},
    {"key": "C-2", "name": "Product Webinar", "status": "open"},
    {"key": "C-3", "name": "Autumn Launch", "status": "closed"},
]


def person(rng: random.Random, index: int) -> dict[str, Any]:
    """One CRM record; every tenth is a lead."""
    lead = index % 10 == 0
    record: dict[str, Any] = {
        "email": f"{rng.choice(FIRST).lower()}.{index}@example.com",
        "kind": "lead" if lead else "person",
        "opted_out": rng.random() < 0.01,
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "city": rng.choice(CITIES),
        "signup_date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "vip": rng.random() < 0.05,
        "lists": [c["name"] for c in CAMPAIGNS if rng.random() < 0.45],
    }
    if lead:
        record["company"] = rng.choice(COMPANIES)
        record["lead_score"] = rng.randint(0, 100)
    return record


class FilesDemo:
    title = "CRM and ESP as JSON Lines files"

    @asynccontextmanager
    async def setup(self, directory: Path | None) -> AsyncIterator[DemoSetup]:
        target = fresh_directory(directory or REPO / ".demo" / "files")
        rng = random.Random(2024)
        crm = [person(rng, index) for index in range(1, 2001)]
        esp = []
        for record in crm[:1200]:
            # The ESP already knows the first 1,200, with a few differences and its own opt-outs.
            known = {
                "email": record["email"].upper() if rng.random() < 0.02 else record["email"],
                "opted_out": rng.random() < 0.02,
                "lists": [],
                "FIRSTNAME": record["first_name"],
                "CITY": record["city"],
                "ENGAGEMENT": rng.randint(0, 10),
            }
            if known["opted_out"]:
                known["opt_out_reason"] = "unsubscribed"
            esp.append(known)
        _write(target / "crm.jsonl", crm)
        _write(target / "esp.jsonl", esp)
        _write(target / "campaigns.jsonl", CAMPAIGNS)
        rules = target / RULES.name
        shutil.copyfile(RULES, rules)
        yield DemoSetup(rules)

    async def change_both_sides(self, directory: Path) -> list[str]:
        crm = _read(directory / "crm.jsonl")
        esp = _read(directory / "esp.jsonl")
        by_email = {r["email"].lower(): r for r in esp}
        edits = []
        for record in crm[10:15]:
            record["opted_out"] = True
        edits.append("the CRM opted out 5 people (ticked 'no email soliciting')")
        for record in crm[20:24]:
            by_email[record["email"]]["opted_out"] = True
            by_email[record["email"]]["opt_out_reason"] = "unsubscribed"
        edits.append("4 contacts unsubscribed from an ESP email")
        for record in crm[30:40]:
            record["first_name"] = record["first_name"] + "ie"
        edits.append("the CRM renamed 10 people (FIRSTNAME follows the CRM)")
        for record in crm[40:46]:
            by_email[record["email"]]["CITY"] = "Oxford"
        edits.append("the ESP changed CITY for 6 contacts (CITY syncs both ways)")
        crm[CONFLICTED]["city"], by_email[crm[CONFLICTED]["email"]]["CITY"] = "Cambridge", "Norwich"
        edits.append(
            f"{crm[CONFLICTED]['email']}: CITY edited differently on both sides (a conflict, no owner)"
        )
        removed = next(r for r in crm[60:] if "Spring Newsletter" in r["lists"])
        removed["lists"] = [name for name in removed["lists"] if name != "Spring Newsletter"]
        edits.append(f"{removed['email']} was removed from the Spring Newsletter campaign")
        resubscriber = next(
            r for r in crm[:1200] if by_email[r["email"].lower()]["opted_out"] and r is not removed
        )
        resubscriber["opted_out"] = False
        edits.append(f"{resubscriber['email']} was opted back in in the CRM, but unsubscribed in the ESP")
        _write(directory / "crm.jsonl", crm)
        _write(directory / "esp.jsonl", esp)
        return edits

    async def settle_conflicts(self, directory: Path) -> list[str]:
        esp = _read(directory / "esp.jsonl")
        email = _read(directory / "crm.jsonl")[CONFLICTED]["email"]
        for row in esp:
            if row["email"].lower() == email:
                row["CITY"] = "Cambridge"
        _write(directory / "esp.jsonl", esp)
        return [f"{email}: the ESP's CITY corrected to the CRM's \"Cambridge\""]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    jsonl.write_atomically(path, [jsonl.encode_object(record) for record in records])


def _read(path: Path) -> list[dict[str, Any]]:
    return [jsonl.decode_object(line) for line in jsonl.read_lines(path)]


KIT = FilesDemo()
