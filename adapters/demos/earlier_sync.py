"""What an earlier sync left in an ESP account: the ESP sandboxes' share of the Workbooks sandbox's story.

`listsync emulate workbooks` and `listsync emulate <esp>`, run with the same `--seed` and
`--contacts`, are meant to be pointed at together with the shipped rules (`rules/workbooks-<esp>.toml`),
and a plan between two unrelated accounts would show nothing but creations. So an ESP sandbox is
generated as an account that an earlier integration of those rules filled from the very CRM the
Workbooks sandbox serves (`adapters.workbooks.sandbox.generated_crm`): its lists are named as the
rules name the open integrated campaigns, and it holds most of the CRM's people and leads, with
the values and list memberships the rules give them. What happened in the ESP since (opt-outs the
CRM does not know, campaigns sent with their opens, clicks and bounces) is the ESP sandbox's own part.

This module is the vendor-neutral half: it reads the CRM as the Workbooks adapter would
(`adapters.workbooks.rows`, `adapters.workbooks.statuses`) and maps it through the rule set with the
engine's own `Mapper` and `ListNamer`, so a list is named, and a member is in it, exactly as a sync
of those rules would have it. Records the engine would reject (malformed or shared emails) were
never carried over. Which of the others were (`carried` of them, drawn from the seed) is a choice of
the sandbox: the rest joined the CRM after that earlier sync, so the first plan creates them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from adapters.workbooks import rows, statuses
from adapters.workbooks.adapter import WorkbooksSettings
from adapters.workbooks.emulator_state import WorkbooksState
from adapters.workbooks.emulator_types import render
from engine.records import Campaign, Mapper, Record
from engine.rules_loading import load_rules
from engine.ruleset import FieldType, RuleSet


@dataclass(frozen=True)
class EarlierSync:
    """What an earlier sync of a rule set put in the ESP account."""

    lists: tuple[str, ...]  # the lists the rules manage: the open integrated campaigns' (and a master list)
    fields: Mapping[str, FieldType]  # the ESP fields the rules map, with their types
    contacts: tuple[Record, ...]  # the CRM's people and leads it carried over, as the engine maps them


def earlier_sync(rules_path: Path, crm: WorkbooksState, *, seed: int, carried: int) -> EarlierSync:
    """The lists, fields and contacts an earlier sync of the rule file `rules_path` left from `crm`:
    at most `carried` of the CRM's syncable people and leads, drawn from `seed`, in the CRM's order."""
    rules = load_rules(rules_path, check_adapters=False).rules
    records = crm_records(rules, crm)
    chosen = sorted(
        random.Random(f"earlier sync {seed}").sample(range(len(records)), min(carried, len(records)))
    )
    mapper = Mapper(rules, "crm", crm_campaigns(rules, crm))
    return EarlierSync(
        lists=tuple(sorted(mapper.managed_lists)),
        fields={mapping.esp: mapping.type for mapping in rules.fields},
        contacts=tuple(records[index] for index in chosen),
    )


def crm_records(rules: RuleSet, crm: WorkbooksState) -> list[Record]:
    """The CRM's people and leads as a sync of `rules` maps them, but for those it would reject
    (malformed emails, and emails more than one record holds)."""
    settings = msgspec.convert(rules.crm.settings, WorkbooksSettings)
    named = statuses.resolved(crm.records[statuses.STATUSES].values(), settings.member_status, None)
    held = rows.memberships(crm.live(rows.MEMBERS), named.of)
    mapper = Mapper(rules, "crm", crm_campaigns(rules, crm))
    mapped: list[Record] = []
    for kind in rows.KINDS:
        for record in crm.live(kind.controller):
            shown = {name: render(value) for name, value in record.items()}
            memberships = held.get((kind.class_name, record["id"]), {})
            payload = rows.encode_row(kind, shown, memberships, settings.undeliverable_field)
            found = mapper.map(rows.decode(payload)) if payload is not None else None
            if isinstance(found, Record):
                mapped.append(found)
    shared = Counter(record.email for record in mapped)
    return [record for record in mapped if shared[record.email] == 1]


def crm_campaigns(rules: RuleSet, crm: WorkbooksState) -> list[Campaign]:
    """The CRM's live campaigns as the Workbooks adapter reports them, with the fields the rules offer."""
    fields = msgspec.convert(rules.crm.settings, WorkbooksSettings).campaign_fields
    shown = ({name: render(value) for name, value in c.items()} for c in crm.live(rows.CAMPAIGNS))
    return [rows.campaign_of(campaign, fields) for campaign in shown]
