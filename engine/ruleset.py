"""The rules language, as frozen msgspec Structs.

A rule file is TOML; `engine.rules_loading` decodes it into a `RuleSet` and adds file/line/column to
every error. This module only says what a valid rule set looks like, with the defaults a person gets
when they leave a key out. Unknown keys are refused everywhere, so a typo is an error, not a silent
default. `rules/README.md` documents every key; keep the two in step.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

FieldType = Literal["text", "numeric", "date", "boolean"]
RecordKind = Literal["person", "lead"]
AppliesTo = Literal["person", "lead", "both"]
Direction = Literal["crm_to_esp", "esp_to_crm", "both"]
Side = Literal["crm", "esp"]
ProcessName = Literal["members", "contacts", "activity", "imports"]
EventType = Literal["open", "click", "bounce", "unsubscribe"]

Duration = Annotated[
    str,
    Meta(pattern=r"^[1-9][0-9]*(s|m|h|d)$", description="a whole number and a unit: 30s, 15m, 1h, 1d"),
]
Share = Annotated[float, Meta(ge=0.0, le=1.0)]
Positive = Annotated[int, Meta(ge=1)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str) -> float:
    """Seconds in a `Duration` string such as ``15m``."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Rules(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Common base: immutable, and unknown keys are errors."""


class SecretRef(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where a secret comes from. Secrets are never written inline in a rule file."""

    env: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret names exactly one of `env` or `file`")


class FieldLimits(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Custom fields the ESP account allows per type; existing fields count against them."""

    text: Annotated[int, Meta(ge=0)] | None = None
    numeric: Annotated[int, Meta(ge=0)] | None = None
    date: Annotated[int, Meta(ge=0)] | None = None
    boolean: Annotated[int, Meta(ge=0)] | None = None
    total: Annotated[int, Meta(ge=0)] | None = None


class Limits(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Budget and sizes for one vendor account. Unset values fall back to the adapter's defaults."""

    calls: Positive | None = None
    period: Duration = "1s"
    burst: Positive | None = None
    daily_calls: Positive | None = None  # a second budget, over a day, that the same calls count against
    batch_size: Positive | None = None
    max_lists: Positive | None = None
    fields: FieldLimits = FieldLimits()


class SideRules(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One side of the sync: which adapter, its settings, and its account's limits."""

    adapter: Name
    account: Name | None = None
    settings: dict[str, Any] = {}
    limits: Limits = Limits()

    def account_key(self) -> str:
        """Processes with the same key share one call budget."""
        return self.account or f"{self.adapter}:default"


class Entities(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which CRM record types sync, and what a deletion in the CRM does on the ESP."""

    kinds: tuple[RecordKind, ...] = ("person", "lead")
    on_crm_delete: Literal["remove_from_lists", "keep"] = "remove_from_lists"


class FieldMapping(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One CRM field mapped to one ESP custom field."""

    crm: Name
    esp: Name
    type: FieldType = "text"
    applies_to: AppliesTo = "both"
    direction: Direction = "crm_to_esp"
    owner: Side | None = None
    crm_lead: Name | None = None

    def crm_field_for(self, kind: RecordKind) -> str:
        """The CRM field name on a record of this kind (leads may name it differently)."""
        return self.crm_lead if kind == "lead" and self.crm_lead else self.crm

    def applies(self, kind: str) -> bool:
        return self.applies_to == "both" or self.applies_to == kind


class Consent(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Opt-out precedence and when, if ever, a contact may be resubscribed."""

    precedence: Literal["opt_out_wins"] = "opt_out_wins"
    resubscribe: Literal["never", "from_crm", "from_esp", "both"] = "never"
    resubscribe_reasons: tuple[str, ...] = ("crm", "admin")
    undeliverable_to_crm: bool = True

    def resubscribe_allowed(self, origin: Side, reason: str | None) -> bool:
        """May an opt-out be reversed because side `origin` opted the contact back in?"""
        if self.resubscribe not in ("both", f"from_{origin}"):
            return False
        # A reversal from the CRM side must also be permitted by why the ESP suppressed the contact.
        return origin == "esp" or (reason or "unknown") in self.resubscribe_reasons


class Campaigns(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which CRM campaigns become ESP lists."""

    integrated: tuple[str, ...] = ()
    flag_field: str | None = None
    only_open: bool = True
    open_statuses: tuple[str, ...] = ("open",)
    unsubscribed_statuses: tuple[str, ...] = ("unsubscribed",)


class Lists(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How ESP list names are made from campaigns, and the optional list of every synced contact."""

    template: Name = "{name}"
    fallback: Name | None = None
    master: Name | None = None


class Intervals(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    members: Duration = "15m"
    contacts: Duration = "15m"
    activity: Duration = "1h"
    imports: Duration = "1m"


class Service(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How `listsync run` runs this rule set."""

    jitter: Annotated[float, Meta(ge=0, le=0.5)] = 0.1  # each wait is the interval, give or take this share
    job_wait: Duration = "1m"  # an apply waits this long for its imports, then leaves them to `imports`
    full_read_every: Duration = "1d"  # runs read what changed since the last; a whole read this often
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None  # loopback /healthz and /metrics


class CampaignTotalsFields(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """CRM campaign fields that hold the ESP's totals for the campaign; unset totals are not kept."""

    sends: Name | None = None
    opens: Name | None = None
    clicks: Name | None = None
    bounces: Name | None = None
    unsubscribes: Name | None = None

    def named(self) -> dict[str, str]:
        """Total -> CRM field, for the totals that have one."""
        return {name: field for name in self.__struct_fields__ if (field := getattr(self, name)) is not None}


class Activity(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the activity process brings back to the CRM."""

    record: tuple[EventType, ...] = ("open", "click", "bounce", "unsubscribe")
    backfill: Duration = "30d"
    totals: CampaignTotalsFields = CampaignTotalsFields()


class Safety(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Thresholds that stop a plan before any write."""

    max_remove_share: Share = 0.2
    max_opt_out_share: Share = 0.05
    min_list_size: Annotated[int, Meta(ge=0)] = 20
    outage_guard: bool = True


class RuleSet(_Rules, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A whole rule file."""

    name: Annotated[
        str,
        Meta(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            description="letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit",
        ),
    ]
    state: Name
    crm: SideRules
    esp: SideRules
    entities: Entities = Entities()
    fields: tuple[FieldMapping, ...] = ()
    consent: Consent = Consent()
    campaigns: Campaigns = Campaigns()
    lists: Lists = Lists()
    intervals: Intervals = Intervals()
    service: Service = Service()
    activity: Activity = Activity()
    safety: Safety = Safety()

    def mapping(self, esp_name: str) -> FieldMapping:
        for field in self.fields:
            if field.esp == esp_name:
                return field
        raise KeyError(esp_name)


def context_digest(rules: RuleSet) -> bytes:
    """What, besides a record's own row, decides how that row maps. A change voids row fingerprints."""
    return msgspec.json.encode([rules.fields, rules.campaigns, rules.lists, rules.entities])
