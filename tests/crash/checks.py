"""What a crashed world must show on the emulators themselves, against its twin that never crashed.
The ESP's part of each dump is read through its `CrashEsp` (`tests/crash/esp.py`).

- No opt-out lost: every address opted out in the CRM at any point the harness looked (at the
  start, after the first sync, by its own edits) is still opted out there; the same for every
  ESP opt-out (a Dotdigital unsubscribe or suppression, a Constant Contact contact unsubscribed, a
  Mailchimp member unsubscribed or cleaned).
- Nobody resubscribed: no ESP contact that was ever opted out is subscribed at the end.
- No duplicates: one ESP contact per address.
- Every job accounted for: every bulk job the emulator ran (Dotdigital imports and deletions,
  Constant Contact activities, Mailchimp batches) is in the state store, ended; or it was submitted
  in the instant between the vendor's answer and the store's write when a kill came (no vendor lets
  a client name a job before it exists): the harness runs such a job to its end at once, as the
  vendor would, and the equal end state proves its rows did no harm and the rest were written again.
- Nothing the state store was told is lost: every run the service logged as ended (in either world)
  is in the store, ended the same way.
- The end state equals the twin's, but for ids, dates and the jobs it took
  (`adapters.emulation.dumps.comparable`), and the ESP fields the rules do not map.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from adapters.emulation.dumps import comparable
from tests.crash.esp import CrashEsp

# Each CRM kind's email column and opt-out flag, as the Workbooks emulator dumps them.
CRM_KINDS = {
    "people": ("main_location[email]", "no_email_soliciting"),
    "leads": ("org_lead_party[main_location[email]]", "org_lead_party[no_email_soliciting]"),
}


def crm_emails(crm: dict[str, Any], *, opted_out: bool = False) -> set[str]:
    """Every address in the CRM's people and leads; with `opted_out`, those whose flag is set."""
    found = {
        str(record.get(email) or "").strip().lower()
        for kind, (email, flag) in CRM_KINDS.items()
        for record in crm[kind]
        if record.get(flag) or not opted_out
    }
    return found - {""}


def crm_opted_out(crm: dict[str, Any]) -> set[str]:
    return crm_emails(crm, opted_out=True)


def consent_problems(
    esp: CrashEsp, crm_was_out: set[str], esp_was_out: set[str], final: dict[str, Any]
) -> list[str]:
    """Opt-outs seen at some point (`crm_was_out`, `esp_was_out`) that the `final` dump lost."""
    problems = []
    lost = sorted((crm_was_out & crm_emails(final["crm"])) - crm_opted_out(final["crm"]))
    if lost:
        problems.append(f"CRM opt-outs lost: {len(lost)}, e.g. {lost[:5]}")
    resubscribed = sorted(esp_was_out - esp.unsubscribed(final["esp"]))
    if resubscribed:
        problems.append(f"{esp.title} contacts resubscribed: {len(resubscribed)}, e.g. {resubscribed[:5]}")
    return problems


def duplicate_problems(esp: CrashEsp, final: dict[str, Any]) -> list[str]:
    counts = Counter(esp.addresses(final["esp"]))
    twice = sorted(email for email, n in counts.items() if n > 1)
    return [f"duplicate {esp.title} contacts: {twice[:5]}"] if twice else []


def run_problems(
    world: str, logged: dict[int, tuple[str, str]], stored: dict[int, tuple[str, str]]
) -> list[str]:
    """Runs the service logged as ended that its state store does not hold as they ended: writes
    of the store lost (every write of a run is committed before the run is logged)."""
    lost = sorted(
        f"{i} {logged[i]}: {stored.get(i, 'missing')}" for i in logged if stored.get(i) != logged[i]
    )
    return (
        [f"{world}: runs logged but not so in the state store: {len(lost)}, e.g. {lost[:3]}"] if lost else []
    )


def job_problems(
    esp: CrashEsp, final: dict[str, Any], stored: list[tuple[str, str, int]], kills: int
) -> tuple[list[str], dict[str, int]]:
    """Problems with the jobs, and their figures: run by the vendor, recorded, lost to a kill."""
    ran = esp.jobs(final["esp"])
    recorded = {job: terminal for job, _, terminal in stored}
    problems = []
    unknown = sorted(set(recorded) - set(ran))
    if unknown:
        problems.append(f"jobs in the state store the vendor never ran: {unknown[:5]}")
    still_open = sorted(job for job, terminal in recorded.items() if not terminal)
    if still_open:
        problems.append(f"jobs the state store still holds open: {still_open[:5]}")
    running = sorted(job for job, status in ran.items() if status in esp.running)
    if running:
        problems.append(f"jobs the vendor still runs: {running[:5]}")
    orphans = sorted(set(ran) - set(recorded))
    if len(orphans) > kills:
        problems.append(f"{len(orphans)} jobs not in the state store, more than the {kills} kills explain")
    return problems, {"ran": len(ran), "recorded": len(recorded), "lost_to_a_kill": len(orphans)}


def difference(esp: CrashEsp, crashed: dict[str, Any], twin: dict[str, Any], mapped: set[str]) -> list[str]:
    """Where the crashed world's end state differs from its twin's: per side and part, the records
    (by email or name) only one world has, and for the others what differs, field by field."""
    mine, theirs = (
        comparable({"crm": dumps["crm"], "esp": esp.synced(dumps["esp"], mapped)})
        for dumps in (crashed, twin)
    )
    problems = []
    for side in ("crm", "esp"):
        for part in sorted(set(mine[side]) | set(theirs[side])):
            a, b = _keyed(mine[side].get(part) or []), _keyed(theirs[side].get(part) or [])
            if a == b:
                continue
            details = [f"{key!r} only here" for key in sorted(a.keys() - b.keys())[:3]]
            details += [f"{key!r} only there" for key in sorted(b.keys() - a.keys())[:3]]
            details += [
                f"{key!r}: {_fields_apart(a[key], b[key])}"
                for key in sorted(a.keys() & b.keys())
                if a[key] != b[key]
            ][:5]
            problems.append(f"{side} {part} differs from the run without crashes: " + "; ".join(details))
    return problems


def _keyed(items: list[Any]) -> dict[str, Any]:
    """A part's records by email or name (or their JSON when they have neither); repeats kept apart."""
    keyed: dict[str, Any] = {}
    for item in items:
        key = str(item.get("email") or item.get("name") or "") if isinstance(item, dict) else ""
        key = key or json.dumps(item, sort_keys=True)[:120]
        while key in keyed:
            key += "+"
        keyed[key] = item
    return keyed


def _fields_apart(a: Any, b: Any) -> str:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return f"{str(a)[:100]} here, {str(b)[:100]} there"
    parts = []
    for name in sorted(a.keys() | b.keys()):
        x, y = a.get(name), b.get(name)
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):
            here = [v for v in x if v not in y][:5]
            there = [v for v in y if v not in x][:5]
            parts.append(f"{name} +{here} -{there}")
        else:
            parts.append(f"{name} {str(x)[:80]} here, {str(y)[:80]} there")
    return ", ".join(parts)
