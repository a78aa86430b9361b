"""Checks across keys of a rule file, and against what the adapters declare they allow.

Decoding proves each key well-formed on its own; these checks find what only the whole file (or
the vendor) can refuse: duplicate field names, mappings past the ESP's field limits, list names the
ESP would reject, a field owner that contradicts its direction. They run on whatever sections
decoded, so one broken table does not hide the problems of the others.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from engine.contract import Capabilities
from engine.lists import template_placeholders
from engine.rules_decoding import Issue
from engine.ruleset import (
    Campaigns,
    Entities,
    FieldMapping,
    FieldType,
    Lists,
    RecordKind,
    RuleSet,
    SideRules,
)

# Python's format-spec mini-language, as far as it decides a rendered string's length.
_FORMAT_SPEC = re.compile(
    r"^(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[a-zA-Z%]?$"
)
_UNKNOWN_FIELD_LENGTH = 255
_CAMPAIGN_BASICS = ("key", "name", "status")


@dataclass(frozen=True)
class Sections:
    """The top-level tables that decoded (None where a table had problems of its own)."""

    crm: SideRules | None
    esp: SideRules | None
    entities: Entities | None
    campaigns: Campaigns | None
    lists: Lists | None
    mappings: Sequence[tuple[int, FieldMapping]]


def check_rules(
    sections: Sections, crm_caps: Capabilities | None, esp_caps: Capabilities | None
) -> list[Issue]:
    """Every cross-key problem; adapter-dependent checks run only where capabilities are given."""
    issues: list[Issue] = []
    issues += _check_mappings(sections.mappings)
    if sections.esp is not None:
        issues += _check_field_limits(sections.mappings, sections.esp, esp_caps)
    if esp_caps is not None:
        issues += _check_esp_field_names(sections.mappings, esp_caps)
    for side, rules, caps in (("crm", sections.crm, crm_caps), ("esp", sections.esp, esp_caps)):
        batch = rules.limits.batch_size if rules is not None else None
        if caps is not None and batch is not None and batch > caps.max_batch:
            message = f"batch size {batch} is above the {side} adapter's maximum of {caps.max_batch}"
            issues.append(Issue((side, "limits", "batch_size"), message))
    if sections.lists is not None:
        issues += _check_lists(sections.lists, crm_caps, esp_caps)
    if sections.entities is not None and not sections.entities.kinds:
        issues.append(Issue(("entities", "kinds"), 'no record kind syncs; list "person", "lead" or both'))
    campaigns = sections.campaigns
    if campaigns is not None and not campaigns.integrated and campaigns.flag_field is None:
        message = 'no campaign is integrated: name campaigns (or "*") here, or set campaigns.flag_field'
        issues.append(Issue(("campaigns", "integrated"), message))
    return issues


def _check_mappings(mappings: Sequence[tuple[int, FieldMapping]]) -> list[Issue]:
    issues: list[Issue] = []
    esp_seen: dict[str, int] = {}
    crm_seen: dict[tuple[str, str], int] = {}
    for index, field in mappings:
        # ESPs compare field names without regard to case, so "Email" and "EMAIL" collide.
        earlier = esp_seen.setdefault(field.esp.casefold(), index)
        if earlier != index:
            message = (
                f'ESP field "{field.esp}" is already mapped by fields[{earlier}] '
                "(ESPs compare field names ignoring case)"
            )
            issues.append(Issue(("fields", index, "esp"), message))
        for kind in ("person", "lead"):
            if not field.applies(kind):
                continue
            crm_name = field.crm_field_for(kind)
            first = crm_seen.setdefault((kind, crm_name), index)
            if first != index:
                key = "crm_lead" if kind == "lead" and field.crm_lead else "crm"
                message = f'CRM {kind} field "{crm_name}" is already mapped by fields[{first}]'
                issue = Issue(("fields", index, key), message)
                if issue not in issues:
                    issues.append(issue)
        one_way_owner = {"crm_to_esp": "crm", "esp_to_crm": "esp"}.get(field.direction)
        if field.owner is not None and one_way_owner is not None and field.owner != one_way_owner:
            message = (
                f'owner "{field.owner}" contradicts direction "{field.direction}": a one-way field '
                f'is owned by its source, "{one_way_owner}"; drop owner or set direction = "both"'
            )
            issues.append(Issue(("fields", index, "owner"), message))
        if field.crm_lead is not None and field.applies_to == "person":
            message = 'crm_lead names the field on leads, but applies_to is "person"'
            issues.append(Issue(("fields", index, "crm_lead"), message))
    return issues


def _check_field_limits(
    mappings: Sequence[tuple[int, FieldMapping]], esp: SideRules, caps: Capabilities | None
) -> list[Issue]:
    issues: list[Issue] = []
    groups: list[tuple[str, list[int]]] = [
        (field_type, [index for index, field in mappings if field.type == field_type])
        for field_type in get_args(FieldType)
    ]
    groups.append(("total", [index for index, _ in mappings]))
    for group, indexes in groups:
        rules_limit: int | None = getattr(esp.limits.fields, group)
        limit = rules_limit
        source = f"esp.limits.fields.{group}"
        if limit is None and caps is not None:
            limit = caps.field_limits.get(group)
            source = "the esp adapter's limit"
        if limit is None or len(indexes) <= limit:
            continue
        what = "fields in total" if group == "total" else f"{group} fields"
        message = f"{len(indexes)} {what} are mapped, but the ESP allows {limit} ({source})"
        issues.append(Issue(("fields", indexes[limit]), message))
    return issues


def _check_esp_field_names(mappings: Sequence[tuple[int, FieldMapping]], caps: Capabilities) -> list[Issue]:
    issues: list[Issue] = []
    for index, field in mappings:
        where = ("fields", index, "esp")
        if caps.field_name_max is not None and len(field.esp) > caps.field_name_max:
            message = (
                f'ESP field name "{field.esp}" is {len(field.esp)} characters; '
                f"the ESP allows {caps.field_name_max}"
            )
            issues.append(Issue(where, message))
        pattern = caps.field_name_pattern
        if pattern is not None and re.fullmatch(pattern, field.esp) is None:
            message = f'ESP field name "{field.esp}" does not match the ESP\'s pattern {pattern}'
            issues.append(Issue(where, message))
    return issues


def _check_lists(lists: Lists, crm_caps: Capabilities | None, esp_caps: Capabilities | None) -> list[Issue]:
    issues: list[Issue] = []
    for key, template in (("template", lists.template), ("fallback", lists.fallback)):
        if template is not None:
            issues += _check_template(("lists", key), template, crm_caps, esp_caps)
    master = lists.master
    if master is not None and esp_caps is not None:
        where = ("lists", "master")
        if len(master) > esp_caps.max_list_name:
            message = (
                f"the master list name is {len(master)} characters; the ESP allows {esp_caps.max_list_name}"
            )
            issues.append(Issue(where, message))
        reserved = {name.casefold(): name for name in esp_caps.reserved_list_names}
        if master.casefold() in reserved:
            message = f'"{reserved[master.casefold()]}" is a list name the ESP reserves; choose another'
            issues.append(Issue(where, message))
    return issues


def _check_template(
    where: tuple[str, str],
    template: str,
    crm_caps: Capabilities | None,
    esp_caps: Capabilities | None,
) -> list[Issue]:
    try:
        placeholders = template_placeholders(template)
        literal = sum(len(text) for text, *_ in string.Formatter().parse(template))
    except ValueError as exc:
        return [Issue(where, f"not a valid template: {exc}")]
    issues: list[Issue] = []
    for _, field, _, conversion in string.Formatter().parse(template):
        if field is not None and conversion not in (None, "s", "r", "a"):
            message = f"placeholder {{{field}!{conversion}}}: a conversion is !s, !r or !a, or none at all"
            issues.append(Issue(where, message))
    lengths: Mapping[str, int] = crm_caps.campaign_field_lengths if crm_caps is not None else {}
    offered = [*_CAMPAIGN_BASICS, *(name for name in lengths if name not in _CAMPAIGN_BASICS)]
    worst: list[tuple[int, str]] = []
    for field, spec in placeholders:
        if not field:
            issues.append(Issue(where, "a placeholder must name a campaign field, such as {name}"))
            continue
        if crm_caps is not None and field not in offered:
            close = difflib.get_close_matches(field, offered, n=1)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            message = f"unknown placeholder {{{field}}}{hint} (the CRM offers: {', '.join(offered)})"
            issues.append(Issue(where, message))
            continue
        spec_match = _FORMAT_SPEC.match(spec)
        try:
            # Tried without its width: "{name:999999999}" would build a string that long.
            format("", _without_width(spec, spec_match))
        except ValueError:
            spec_match = None
        if spec_match is None:
            issues.append(Issue(where, f'placeholder {{{field}:{spec}}} has a bad format spec "{spec}"'))
            continue
        longest = lengths.get(field, _UNKNOWN_FIELD_LENGTH)
        if spec_match.group("precision") is not None:
            longest = min(longest, int(spec_match.group("precision")))
        width = int(spec_match.group("width") or 0)
        worst.append((max(width, longest), field))
    if esp_caps is None or issues:
        return issues
    total = literal + sum(length for length, _ in worst)
    limit = esp_caps.max_list_name
    if total > limit:
        message = f"list names from this template can be {total} characters long, but the ESP allows {limit}"
        if worst:
            biggest, field = max(worst)
            precision = max(1, limit - (total - biggest))
            message += f"; truncate a placeholder, e.g. {{{field}:.{precision}}}"
        issues.append(Issue(where, message))
    return issues


def _without_width(spec: str, match: re.Match[str] | None) -> str:
    if match is None or match.group("width") is None:
        return spec
    start, end = match.span("width")
    return spec[:start] + spec[end:]


def check_crm_fields(rules: RuleSet, columns: Mapping[str, frozenset[str]]) -> list[Issue]:
    """Mapped CRM fields and campaign-totals fields the CRM does not have, by record type
    (`columns`: what a CRM adapter read of its database's metadata; a type it does not list is not
    checked)."""
    issues: list[Issue] = []

    def check(path: tuple[str | int, ...], record_type: str, field: str) -> None:
        offered = columns.get(record_type)
        if offered is None or field in offered:
            return
        close = difflib.get_close_matches(field, sorted(offered), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        issues.append(Issue(path, f"the CRM's {record_type} records have no field {field!r}{hint}"))

    for index, mapping in enumerate(rules.fields):
        for kind in get_args(RecordKind):
            if mapping.applies(kind) and kind in rules.entities.kinds:
                key = "crm_lead" if kind == "lead" and mapping.crm_lead else "crm"
                check(("fields", index, key), kind, mapping.crm_field_for(kind))
    for total, field in rules.activity.totals.named().items():
        check(("activity", "totals", total), "campaign", field)
    return issues
