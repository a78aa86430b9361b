"""What a crashed world must show on the emulators themselves, against its twin that never crashed.

- No opt-out lost: every address opted out in the CRM at any point the harness looked (at the
  start, after the first sync, by its own edits) is still opted out there; the same for every
  Dotdigital unsubscribe and suppression.
- Nobody resubscribed: no Dotdigital contact that was ever unsubscribed is subscribed at the end.
- No duplicates: one Dotdigital contact per address.
- Every job accounted for: every import and deletion the emulator ran is in the state store, ended;
  or it was submitted in the instant between the vendor's answer and the store's write when a kill
  came (no vendor lets a client name an import before it exists), and its rows were planned and
  written again by a later run, which the equal end state proves.
- The end state equals the twin's, but for ids, dates and the jobs it took
  (`adapters.emulation.dumps.comparable`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from adapters.emulation.dumps import comparable

JOB_PREFIXES = ("unsubscribe-import:", "deletion:")
RUNNING = {"NotFinished", "Processing", "Pending", "Started"}


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


def esp_unsubscribed(esp: dict[str, Any]) -> set[str]:
    contacts = {str(c["email"]).lower() for c in esp["contacts"] if c["status"] != "Subscribed"}
    return contacts | {str(s["email"]).lower() for s in esp["suppressions"]}


def consent_problems(crm_was_out: set[str], esp_was_out: set[str], final: dict[str, Any]) -> list[str]:
    """Opt-outs seen at some point (`crm_was_out`, `esp_was_out`) that the `final` dump lost."""
    problems = []
    lost = sorted((crm_was_out & crm_emails(final["crm"])) - crm_opted_out(final["crm"]))
    if lost:
        problems.append(f"CRM opt-outs lost: {len(lost)}, e.g. {lost[:5]}")
    resubscribed = sorted(esp_was_out - esp_unsubscribed(final["esp"]))
    if resubscribed:
        problems.append(f"Dotdigital contacts resubscribed: {len(resubscribed)}, e.g. {resubscribed[:5]}")
    return problems


def duplicate_problems(final: dict[str, Any]) -> list[str]:
    counts = Counter(str(c["email"]).lower() for c in final["esp"]["contacts"])
    twice = sorted(email for email, n in counts.items() if n > 1)
    return [f"duplicate Dotdigital contacts: {twice[:5]}"] if twice else []


def vendor_jobs(esp: dict[str, Any]) -> dict[str, str]:
    """The emulator's jobs as the state store names them, with their status."""
    jobs = {
        (f"unsubscribe-import:{j['id']}" if j["api"] == "v3" else str(j["id"])): str(j["status"])
        for j in esp["imports"]
    }
    return jobs | {f"deletion:{d['id']}": str(d["status"]) for d in esp["deletions"]}


def job_problems(
    esp: dict[str, Any], stored: list[tuple[str, str, int]], kills: int
) -> tuple[list[str], dict[str, int]]:
    """Problems with the jobs, and their figures: run by the vendor, recorded, lost to a kill."""
    ran = vendor_jobs(esp)
    recorded = {job: terminal for job, _, terminal in stored}
    problems = []
    unknown = sorted(set(recorded) - set(ran))
    if unknown:
        problems.append(f"jobs in the state store the vendor never ran: {unknown[:5]}")
    still_open = sorted(job for job, terminal in recorded.items() if not terminal)
    if still_open:
        problems.append(f"jobs the state store still holds open: {still_open[:5]}")
    # Only recorded jobs: the emulator moves an import on when it is polled, and nobody polls one
    # lost to a kill (a vendor finishes it anyway; its rows were written again by a later run).
    running = sorted(job for job, status in ran.items() if status in RUNNING and job in recorded)
    if running:
        problems.append(f"jobs the vendor still runs: {running[:5]}")
    orphans = sorted(set(ran) - set(recorded))
    if len(orphans) > kills:
        problems.append(f"{len(orphans)} jobs not in the state store, more than the {kills} kills explain")
    return problems, {"ran": len(ran), "recorded": len(recorded), "lost_to_a_kill": len(orphans)}


def synced_part(dumps: dict[str, Any], fields: set[str]) -> Any:
    """The dumps as far as listsync answers for them: not the jobs it took, and of a Dotdigital
    contact's data only the `fields` the rules map (the emulator generates others, such as purchase
    dates counted from the moment it started, which differ between two emulators)."""
    esp = {k: v for k, v in dumps["esp"].items() if k not in ("imports", "deletions")}
    esp["contacts"] = [
        {**c, "data": {k: v for k, v in c["data"].items() if k in fields}} for c in esp["contacts"]
    ]
    return comparable({"crm": dumps["crm"], "esp": esp})


def difference(crashed: dict[str, Any], twin: dict[str, Any], fields: set[str]) -> list[str]:
    """Where the crashed world's end state differs from its twin's: per side and part, the records
    (by email or name) only one world has, and for the others what differs, field by field."""
    mine, theirs = synced_part(crashed, fields), synced_part(twin, fields)
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
