"""Naming ESP lists after CRM campaigns, and deciding which lists the rules manage.

A list is managed when its campaign is integrated and (unless the rules say otherwise) open, plus
the optional master list of every synced contact. Lists of campaigns that closed are left as they
are: their membership is no longer changed in either direction.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from engine.errors import PermanentError
from engine.ruleset import RuleSet

if TYPE_CHECKING:
    from engine.records import Campaign


def template_placeholders(template: str) -> list[tuple[str, str]]:
    """(field, format spec) for every placeholder in a list-name template."""
    return [
        (field, spec or "") for _, field, spec, _ in string.Formatter().parse(template) if field is not None
    ]


def render_list_name(template: str, fallback: str | None, campaign: Campaign) -> str:
    """The list name for `campaign`; the fallback template is used when the first renders empty."""
    values = {
        "key": campaign.key,
        "name": campaign.name,
        "status": campaign.status,
        **campaign.fields,
    }
    name = template.format_map(_Blank(values)).strip()
    if not name and fallback:
        name = fallback.format_map(_Blank(values)).strip()
    return name


class _Blank(dict[str, str]):
    """Template values where a field the campaign lacks renders empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


class ListNamer:
    """Campaign memberships -> ESP list names, under one rule set and the current campaigns."""

    def __init__(self, rules: RuleSet, campaigns: Iterable[Campaign]) -> None:
        self._rules = rules
        self._by_key: dict[str, str] = {}
        # List name -> campaign key, for every integrated campaign, open or not: a closed
        # campaign's list no longer syncs, but activity on what it sent still belongs to it.
        self.campaign_of_list: dict[str, str] = {}
        # Lower-cased list name -> the integrated campaigns (and master list) that render it.
        self._claims: dict[str, list[str]] = {}
        master = rules.lists.master
        if master:
            self._claims[master.lower()] = [f"the master list is {master!r}"]
        open_statuses = {status.lower() for status in rules.campaigns.open_statuses}
        for campaign in campaigns:
            if not self._integrated(campaign):
                continue
            name = render_list_name(rules.lists.template, rules.lists.fallback, campaign)
            if not name:
                continue
            claim = f"campaign {campaign.key} ({campaign.name!r}) renders {name!r}"
            self._claims.setdefault(name.lower(), []).append(claim)
            self.campaign_of_list.setdefault(name, campaign.key)
            if not rules.campaigns.only_open or campaign.status.lower() in open_statuses:
                # Adapters may name a campaign by its key or by its name.
                self._by_key[campaign.key] = name
                self._by_key.setdefault(campaign.name, name)
        self.managed = frozenset(self._by_key.values()) | ({master} if master else frozenset())
        self._unsubscribed = {status.lower() for status in rules.campaigns.unsubscribed_statuses}

    def shared_names(self, reserved: Iterable[str] = ()) -> list[str]:
        """One line per list name that more than one integrated campaign (open or closed) renders, or
        that one renders and the ESP reserves (`reserved`), ignoring case as the ESPs do. Campaigns
        sharing a list would have each one's members added to and removed from the other's, and a
        reserved name cannot be made, so the plan refuses them (`refuse_shared_list_names`)."""
        claims = {name: list(claimed) for name, claimed in self._claims.items()}
        for name in reserved:
            claims.setdefault(name.lower(), []).insert(0, f"the ESP reserves {name!r}")
        return ["; ".join(claimed) for _, claimed in sorted(claims.items()) if len(claimed) > 1]

    def _integrated(self, campaign: Campaign) -> bool:
        rules = self._rules.campaigns
        wanted = (
            "*" in rules.integrated or campaign.key in rules.integrated or campaign.name in rules.integrated
        )
        if rules.flag_field is not None:
            flag = campaign.fields.get(rules.flag_field, "").strip().lower()
            wanted = wanted or flag in ("1", "true", "yes", "y")
        return wanted

    def lists_for(self, memberships: Mapping[str, str]) -> frozenset[str]:
        """The managed lists a CRM record with these campaign memberships belongs in."""
        lists = {
            self._by_key[key]
            for key, status in memberships.items()
            if key in self._by_key and status.lower() not in self._unsubscribed
        }
        if self._rules.lists.master:
            lists.add(self._rules.lists.master)
        return frozenset(lists)


def refuse_shared_list_names(
    rules: RuleSet, campaigns: Iterable[Campaign], reserved: Iterable[str] = ()
) -> None:
    """Raise `PermanentError` when two integrated campaigns would share one ESP list, or one would
    have a list name the ESP reserves."""
    shared = ListNamer(rules, campaigns).shared_names(reserved)
    if shared:
        raise PermanentError(
            "every campaign needs an ESP list of its own, under a name the ESP allows (campaigns sharing "
            "one would have each one's members added to and removed from the other's): "
            + " | ".join(shared)
            + ". Give the campaigns distinct names, or put {key} in lists.template; nothing was written."
        )
