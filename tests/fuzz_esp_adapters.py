"""The Constant Contact and Mailchimp adapters' reads and writes, for the response fuzz tests.

Like the Dotdigital operations of `tests/fuzz_adapters.py`: each runs over a fresh emulator of a
dozen contacts (a few lists or tags, one sent campaign) and calls `arm` when its fuzzed part starts.
Constant Contact's adapter holds a grant in a token store; with the test's `session` flag the access
token has expired, so the first call refreshes it and the authorization server's answers are fuzzed
too. Mailchimp's tag batches are polled for their results archive, which comes from another host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from adapters.constantcontact.adapter import ConstantContactAdapter, ConstantContactSettings
from adapters.constantcontact.emulator import create_app as constantcontact_app
from adapters.constantcontact.emulator_generate import generate as generate_constantcontact
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.constantcontact.emulator_state import Knobs as ConstantContactKnobs
from adapters.mailchimp.adapter import MailchimpAdapter, MailchimpSettings
from adapters.mailchimp.emulator import create_app as mailchimp_app
from adapters.mailchimp.emulator_seeding import generate as generate_mailchimp
from adapters.mailchimp.emulator_state import Knobs as MailchimpKnobs
from adapters.mailchimp.emulator_state import MailchimpState
from engine.contract import Adapter, AdapterContext, OAuthTokens
from engine.plans import Change, Op
from engine.ruleset import SecretRef
from tests.fuzz_adapters import (
    NEW,
    NOW,
    Operation,
    Vendor,
    job_operation,
    read_operations,
    with_secrets,
    write_operation,
)

# -- what both write alike: `member` picks a subscribed contact and a list (tag) it is in ----------------
Member = Callable[[Any], tuple[str, str]]


def _same_writes(member: Member) -> dict[str, Operation]:
    def new_lists(state: Any) -> list[Op]:
        return [Op("create_list", list="Fuzzed"), Op("create_list", list=member(state)[1])]

    def new_fields(state: Any) -> list[Op]:
        return [
            Op("create_field", field="FUZZED", field_type="numeric"),
            Op("create_field", field="CITY", field_type="text"),
        ]

    def opt_outs(state: Any) -> list[Op]:
        return [Op("opt_out_esp", email=NEW), Op("opt_out_esp", email=member(state)[0])]

    def removals(state: Any) -> list[Op]:
        email, name = member(state)
        return [Op("remove_member", email=email, list=name), Op("remove_member", email=NEW, list=name)]

    return {
        "create_list": write_operation("create_list", new_lists),
        "create_field": write_operation("create_field", new_fields),
        "opt_out_esp": write_operation("opt_out_esp", opt_outs),
        "remove_member": write_operation("remove_member", removals),
    }


def _new_contact(state: Any) -> Op:
    return Op("upsert_contact", email=NEW, changes={"CITY": Change(None, "Leeds")})


# -- Constant Contact ---------------------------------------------------------------------------------
SCOPES = "contact_data campaign_data offline_access"
MASTER = "All Workbooks Contacts"


def constantcontact_state() -> ConstantContactState:
    knobs = ConstantContactKnobs(rate_limited=False, activity_polls=0)
    state = ConstantContactState(knobs, seed=3, started_at=NOW)
    generate_constantcontact(state, seed=3, contacts=12, lists=3, campaigns=1)
    return state


class _Tokens:
    """A token store holding a grant the emulator issued."""

    def __init__(self, tokens: OAuthTokens) -> None:
        self.tokens = tokens

    async def load(self) -> OAuthTokens | None:
        return self.tokens

    async def save(self, tokens: OAuthTokens) -> None:
        self.tokens = tokens


def _constantcontact(
    context: AdapterContext, session: bool, state: ConstantContactState
) -> tuple[Adapter, tuple[str, ...]]:
    issued = state.grants.issue(SCOPES)
    access, refresh = str(issued["access_token"]), str(issued["refresh_token"])
    expires = time.time() + (-60 if session else 86_400)  # an expired token is refreshed first
    knobs = state.knobs
    settings = ConstantContactSettings(client_id=knobs.client_id, client_secret=SecretRef(env="S"))
    context = with_secrets(context, S=knobs.client_secret)
    context.tokens = _Tokens(OAuthTokens(access, refresh, expires))
    return ConstantContactAdapter(settings, context), (knobs.client_secret, access, refresh)


def _cc_member(state: ConstantContactState) -> tuple[str, str]:
    """A subscribed contact and a list it is in, other than the master list."""
    for contact in state.contacts.values():
        others = [state.lists[i].name for i in contact.lists if state.lists[i].name != MASTER]
        if contact.permission != "unsubscribed" and others:
            return contact.email, others[0]
    raise LookupError("no subscribed contact in a list")


def _cc_opted_out(state: ConstantContactState) -> str:
    return next(c.email for c in state.contacts.values() if c.permission == "unsubscribed")


def _cc_joining(state: ConstantContactState) -> Op:
    """A subscribed contact joining a list it is not in."""
    email, member_of = _cc_member(state)
    other = next(x.name for x in state.lists.values() if x.name not in (member_of, MASTER))
    return Op("add_member", email=email, list=other)


def _cc_upserts(state: ConstantContactState) -> list[Op]:
    resubscribe = {"opted_out": Change(True, False)}
    return [
        _new_contact(state),
        Op("upsert_contact", email=_cc_member(state)[0], changes={"first_name": Change("A", "B")}),
        Op("upsert_contact", email=_cc_opted_out(state), changes=resubscribe),
    ]


def _cc_joinings(state: ConstantContactState) -> list[Op]:
    joining = _cc_joining(state)
    return [joining, Op("add_member", email=_cc_opted_out(state), list=joining.list)]


CONSTANT_CONTACT: dict[str, Operation] = {
    **read_operations(),
    **_same_writes(_cc_member),
    "upsert_contact": write_operation("upsert_contact", _cc_upserts),
    "add_member": write_operation("add_member", _cc_joinings),
    "poll an import": job_operation("upsert_contact", _new_contact),
    "poll a membership change": job_operation("add_member", _cc_joining),
}


# -- Mailchimp ----------------------------------------------------------------------------------------
AUDIENCE = "Listsync Customers"
MC_KEY = MailchimpKnobs().api_key


def mailchimp_state() -> MailchimpState:
    state = MailchimpState(MailchimpKnobs(batch_polls=1), seed=3, started_at=NOW)
    generate_mailchimp(state, seed=3, members=12, tags=2, campaigns=1, name=AUDIENCE)
    return state


def _mailchimp(
    context: AdapterContext, session: bool, state: MailchimpState
) -> tuple[Adapter, tuple[str, ...]]:
    endpoint = "https://us21.api.mailchimp.com"
    settings = MailchimpSettings(api_key=SecretRef(env="K"), audience=AUDIENCE, endpoint=endpoint)
    return MailchimpAdapter(settings, with_secrets(context, K=MC_KEY)), (MC_KEY,)


def _mc_member(state: MailchimpState) -> tuple[str, str]:
    """A subscribed member and a tag it has."""
    (audience,) = state.audiences.values()
    for segment in audience.segments.values():
        for member_id in segment.members:
            member = audience.members[member_id]
            if member.status == "subscribed":
                return member.email, segment.name
    raise LookupError("no subscribed member with a tag")


def _mc_tagging(state: MailchimpState) -> Op:
    return Op("add_member", email=_mc_member(state)[0], list="Fuzzed")


def _mc_upserts(state: MailchimpState) -> list[Op]:
    renamed = Op("upsert_contact", email=_mc_member(state)[0], changes={"FNAME": Change("A", "B")})
    return [_new_contact(state), renamed]


MAILCHIMP: dict[str, Operation] = {
    **read_operations(),
    **_same_writes(_mc_member),
    "upsert_contact": write_operation("upsert_contact", _mc_upserts),
    "add_member": write_operation(
        "add_member", lambda state: [_mc_tagging(state), Op("add_member", email=NEW, list="Fuzzed")]
    ),
    "poll a batch": job_operation("add_member", _mc_tagging),
}

VENDORS = {
    "Constant Contact": Vendor(
        "Constant Contact",
        "esp",
        constantcontact_state,
        constantcontact_app,
        _constantcontact,
        CONSTANT_CONTACT,
    ),
    "Mailchimp": Vendor("Mailchimp", "esp", mailchimp_state, mailchimp_app, _mailchimp, MAILCHIMP),
}
