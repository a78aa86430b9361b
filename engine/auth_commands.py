"""`listsync auth NAME RULES`: authorise listsync, once, at a vendor that signs in with OAuth2.

An adapter whose vendor grants access through OAuth2's authorization code flow registers an
authorizer in the ``listsync.authorizers`` entry-point group under the adapter's own name (the engine
imports no adapter); other adapters sign in with what their settings name, and need no `auth`.

The command finds the side of RULES that uses adapter NAME and opens its state store first (so an
unusable one fails before anyone is sent to a browser). Then it prints the redirect URI to register
with the vendor and the authorize URL, made by the authorizer for a fresh random ``state``
(``--open`` also opens it in a browser), and catches the redirect (`engine.oauth_redirects`): on the
loopback address the redirect URI names, or pasted on stdin with ``--paste`` or when that URI is not
plain http on loopback. A redirect whose ``state`` is not this request's, or that carries an
``error`` (the person denied access), stops the command with nothing stored; otherwise the
authorizer exchanges the code, and the grant goes to the state store under the rule set and side
(`engine.store.SideTokens`), where the adapter finds and refreshes it. Nothing waits longer than
``--timeout``. No token and no code is ever printed or logged.
"""

from __future__ import annotations

import argparse
import secrets
import webbrowser
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import anyio.to_thread
from rich.console import Console
from rich.markup import escape

from engine.budgets import Budgets
from engine.contract import AdapterContext, OAuthTokens
from engine.errors import PermanentError
from engine.http import budgeted_client
from engine.oauth_redirects import Redirect, caught_redirect, loopback, pasted_redirect
from engine.registry import UnknownAdapter, available
from engine.rules_loading import LoadedRules, load_rules, resolve_secret
from engine.ruleset import Side
from engine.session import SIDES, budget_for
from engine.store import SideTokens, StateStore

GROUP = "listsync.authorizers"
DEFAULT_TIMEOUT = 300.0  # seconds: about what a person needs to sign in, and an authorization code's life


class Authorizer(Protocol):
    """One vendor's half of the authorization code flow, for one side's settings."""

    @property
    def redirect_uri(self) -> str:
        """Where the vendor sends the browser back; registered with the vendor's application."""
        ...

    def authorization_url(self, state: str) -> str:
        """The vendor's consent page for this request, carrying ``state`` back in the redirect."""
        ...

    async def exchange(self, code: str) -> OAuthTokens:
        """The grant for a code the redirect carried; errors name neither code nor tokens."""
        ...

    async def aclose(self) -> None: ...


class AuthorizerFactory(Protocol):
    def __call__(self, settings: Any, context: AdapterContext) -> Authorizer: ...


def add_parsers(sub: Any) -> None:
    """`listsync auth` on the `listsync` parser."""
    auth = sub.add_parser(
        "auth", help="authorise listsync at a vendor that signs in with OAuth2 (e.g. constant-contact)"
    )
    auth.add_argument("name", help="the adapter to authorise, e.g. constant-contact")
    auth.add_argument("rules", type=Path, help="the rule file: its state store keeps the grant")
    auth.add_argument("--open", action="store_true", help="open the authorize URL in a web browser")
    auth.add_argument(
        "--paste",
        action="store_true",
        help="read the redirect URL (or the code) pasted on stdin instead of catching it on loopback",
    )
    auth.add_argument(
        "--side", choices=SIDES, default=None, help="the side to authorise, when both use the adapter"
    )
    auth.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the browser or the paste (default {DEFAULT_TIMEOUT:.0f})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


async def auth(args: argparse.Namespace, out: Console, err: Console) -> int:
    factory = authorizer_factory(args.name)
    if factory is None:
        out.print(
            f"The {escape(args.name)} adapter needs no `listsync auth`: it signs in with the credentials "
            "its settings name in the rule file (secrets as { env = ... } or { file = ... })."
        )
        return 0
    loaded = load_rules(args.rules)
    side = _side(loaded, args.name, args.side)
    settings = loaded.crm_settings if side == "crm" else loaded.esp_settings
    budget = budget_for(Budgets(), loaded, side)
    async with await StateStore.open(loaded.state_path) as store:
        tokens = SideTokens(store, loaded.rules.name, side, args.name)
        context = AdapterContext(
            side=side,
            base_dir=loaded.base_dir,
            budget=budget,
            secret=partial(resolve_secret, base_dir=loaded.base_dir),
            http=partial(budgeted_client, budget=budget),
            tokens=tokens,
        )
        authorizer = factory(settings, context)
        try:
            grant = await _authorise(authorizer, args, out)
        finally:
            await authorizer.aclose()
        await tokens.save(grant)
    out.print(
        f"Authorised: {escape(args.name)} granted listsync access for rule set {loaded.rules.name} "
        f"({side} side). The grant is kept in {escape(str(loaded.state_path))} and refreshed as "
        "listsync runs."
    )
    return 0


def authorizer_factory(name: str) -> AuthorizerFactory | None:
    """The authorizer registered for adapter ``name``; None for an installed adapter that needs none."""
    for ep in entry_points(group=GROUP, name=name):
        return cast(AuthorizerFactory, ep.load())
    if name in available():
        return None
    raise UnknownAdapter(name)


def _side(loaded: LoadedRules, name: str, wanted: Side | None) -> Side:
    using = [s for s in SIDES if (loaded.rules.crm if s == "crm" else loaded.rules.esp).adapter == name]
    if wanted is not None and wanted not in using:
        raise PermanentError(f"{loaded.path}: {wanted}.adapter is not {name!r}")
    if wanted is None and len(using) > 1:
        raise PermanentError(f"{loaded.path}: both sides use {name!r}; say which: --side crm or --side esp")
    if not using:
        raise PermanentError(f"{loaded.path}: neither side uses the {name!r} adapter; nothing to authorise")
    return wanted or using[0]


async def _authorise(authorizer: Authorizer, args: argparse.Namespace, out: Console) -> OAuthTokens:
    state = secrets.token_urlsafe(32)
    url = authorizer.authorization_url(state)
    where = None if args.paste else loopback(authorizer.redirect_uri)
    shown = escape(authorizer.redirect_uri)
    out.print(f"Redirect URI (register it with the vendor's application, exactly): {shown}")
    try:
        with anyio.fail_after(args.timeout):
            if where is None:
                _show(out, url, "Then paste here the address the browser was sent to (or only its code):")
                await _open(url, args.open, out)
                redirect = await pasted_redirect()
            else:
                async with caught_redirect(where) as arrival:
                    _show(out, url, f"Waiting for the browser to come back to {shown} ...")
                    await _open(url, args.open, out)
                    redirect = await arrival()
    except TimeoutError:
        raise PermanentError(
            f"no answer came back within {args.timeout:g} seconds (--timeout); nothing was stored. "
            "Run the command again when ready to sign in."
        ) from None
    return await authorizer.exchange(_code(redirect, state))


def _show(out: Console, url: str, then: str) -> None:
    out.print("Open this URL, sign in and allow access:")
    out.print(url, markup=False, soft_wrap=True, overflow="ignore", crop=False)
    out.print(then)


async def _open(url: str, wanted: bool, out: Console) -> None:
    if wanted and not await anyio.to_thread.run_sync(webbrowser.open, url):
        out.print("No browser could be opened here: open the URL above yourself.")


def _code(redirect: Redirect, state: str) -> str:
    """The redirect's code, once it proved to answer this request and to carry no error."""
    params = redirect.params
    if not redirect.bare and not secrets.compare_digest(params.get("state", "").encode(), state.encode()):
        raise PermanentError(
            "the redirect's state is not this request's: it answers another authorisation (an old "
            "browser tab, or a link someone else made); nothing was stored. Run the command again."
        )
    if "error" in params:
        said = " ".join(params.get("error_description", "").split())[:300]
        raise PermanentError(
            f"the vendor did not authorise listsync ({params['error'][:100]}"
            + (f": {said}" if said else "")
            + "); nothing was stored"
        )
    code = params.get("code", "")
    if not code:
        raise PermanentError("the redirect carries no authorization code; nothing was stored")
    return code
