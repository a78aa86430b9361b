"""Opt-out precedence: the one place that decides whether a contact is opted out after a sync.

The default is absolute: an opt-out seen on either side wins and is propagated to the other side,
and nothing resubscribes a contact. A rule may allow a resubscribe from one side (`resubscribe`),
and a resubscribe from the CRM must also be permitted by why the ESP suppressed the contact. A
resubscribe the rules forbid is reported as a `blocked_resubscribe` op and the opt-out is restored
on the side that dropped it, so the opt-out is never lost and the next plan is quiet.
"""

from __future__ import annotations

from msgspec import Struct

from engine.plans import Change, Op
from engine.records import Record
from engine.ruleset import Consent, Side

OPTED_OUT = "opted_out"


class ConsentDecision(Struct, frozen=True):
    """The agreed opt-out state; the ops to reach it; `resubscribe` names a side to opt back in."""

    opted_out: bool
    reason: str | None
    ops: tuple[Op, ...] = ()
    resubscribe: Side | None = None

    def resubscribe_change(self) -> dict[str, Change]:
        return {OPTED_OUT: Change(True, False)}


def decide(email: str, crm: Record, esp: Record, base: Record | None, rules: Consent) -> ConsentDecision:
    """The agreed opt-out state for one contact, and the ops that bring both sides to it."""
    crm_out, esp_out = crm.opted_out, esp.opted_out
    was_out = base.opted_out if base is not None else False
    known = base.opt_out_reason if base is not None and base.opted_out else None
    esp_reason = kept_reason(known, esp.opt_out_reason, rules)
    if crm_out == esp_out:
        return ConsentDecision(crm_out, esp_reason if esp_out else None)
    if crm_out:
        # The ESP is opted in. Either it never heard of the CRM's opt-out, or it resubscribed.
        if was_out and rules.resubscribe_allowed("esp", esp_reason):
            return ConsentDecision(False, None, resubscribe="crm")
        ops = [Op("opt_out_esp", email, reason="opted out in the CRM")]
        if was_out:
            ops.append(_blocked(email, "esp", "resubscribed in the ESP"))
        return ConsentDecision(True, "crm", tuple(ops))
    if was_out and rules.resubscribe_allowed("crm", esp_reason):
        return ConsentDecision(False, None, resubscribe="esp")
    ops = [Op("opt_out_crm", email, reason=f"opted out in the ESP ({esp_reason or 'unknown'})")]
    if was_out:
        ops.append(_blocked(email, "crm", f"opted back in in the CRM; ESP reason {esp_reason or 'unknown'}"))
    return ConsentDecision(True, esp_reason, tuple(ops))


def kept_reason(known: str | None, read: str | None, rules: Consent) -> str | None:
    """Why a contact stays opted out, given the reason `known` from before and the one the ESP `read`.

    The known reason stands unless the one read forbids more: an ESP reports listsync's own opt-out
    (re-asserted on a contact made again there) as an admin one, and that must not turn someone who
    unsubscribed themselves into someone a CRM opt-in may resubscribe (`resubscribe_reasons`).
    """
    if known is None or read is None:
        return known or read
    if known in rules.resubscribe_reasons and read not in rules.resubscribe_reasons:
        return read
    return known


def _blocked(email: str, side: str, what: str) -> Op:
    return Op(
        "blocked_resubscribe",
        email,
        side=side,
        reason=f"{what}, but the rules do not allow this resubscribe; the opt-out is restored",
    )
