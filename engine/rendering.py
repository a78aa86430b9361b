"""Showing a plan to a person, like `terraform plan`, or to a program as JSON.

One line per op with a symbol, the record, the list or field and old -> new values; a per-kind count
first when the plan is large; one summary line last. Held plans, rejected records and contacts the
rules keep listsync away from are shown after the summary so they are not missed. Colour comes from
rich and is dropped when not on a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from rich.console import Console
from rich.text import Text

from engine.plans import Op, Plan, summarise
from engine.values import Value

SYMBOLS: dict[str, tuple[str, str]] = {
    "create_list": ("+", "green"),
    "create_field": ("+", "green"),
    "upsert_contact": ("~", "yellow"),
    "add_member": ("+", "green"),
    "remove_member": ("-", "red"),
    "opt_out_esp": ("!", "magenta"),
    "opt_out_crm": ("!", "magenta"),
    "update_crm": ("~", "yellow"),
    "mark_undeliverable_crm": ("!", "magenta"),
    "record_activity": (">", "cyan"),
    "conflict": ("?", "bold red"),
    "blocked_resubscribe": ("x", "bold red"),
}
LARGE = 50
DEFAULT_SHOWN = 200


def select(ops: Iterable[Op], kinds: Sequence[str] = (), lists: Sequence[str] = ()) -> list[Op]:
    """Ops of the given kinds and touching the given lists (no filter when empty)."""
    return [op for op in ops if (not kinds or op.kind in kinds) and (not lists or op.list in lists)]


def render(
    plan: Plan,
    console: Console,
    *,
    kinds: Sequence[str] = (),
    lists: Sequence[str] = (),
    limit: int | None = DEFAULT_SHOWN,
) -> None:
    """Print the plan for a person."""
    ops = select(plan.ops, kinds, lists)
    if not ops and not plan.rejections:
        if plan.deferred:
            console.print(f"[green]No changes for the {plan.process} process.[/]")
            console.print(_deferred_line(plan))
        else:
            console.print("[green]No changes.[/] Both sides agree with the rules.")
        _listed(console, plan.left_alone, "left alone by the rules", "dim")
        return
    if len(ops) > LARGE:
        console.print(Text(summary_line(ops), style="bold"))
        console.print(Text("Ops by kind:", style="bold"))
        for kind, count in summarise(ops).items():
            symbol, style = SYMBOLS[kind]
            console.print(Text(f"  {symbol} {kind:<24}", style=style) + Text(f"{count:>10,}"))
        console.print()
    shown = ops if limit is None else ops[:limit]
    for op in shown:
        for line in op_lines(op):
            console.print(line)
    if len(shown) < len(ops):
        console.print(
            f"  … {len(ops) - len(shown):,} more ops not shown (filter with --kind/--list, or --all)",
            style="dim",
        )
    console.print()
    console.print(Text(summary_line(ops), style="bold"))
    if plan.deferred:
        console.print(_deferred_line(plan))
    for stop in plan.safety_stops:
        console.print(Text(f"Held: {stop}", style="bold red"))
    if plan.safety_stops:
        console.print(
            "Nothing will be written until this is reviewed; apply with --override-safety to proceed."
        )
    _listed(console, plan.rejections, "rejected and left unchanged", "yellow")
    _listed(console, plan.left_alone, "left alone by the rules", "dim")


def _listed(console: Console, records: Sequence[tuple[str, str, str]], what: str, style: str) -> None:
    """Up to 20 (side, email, why) records under a count line; the rest are in --json."""
    if not records:
        return
    console.print(Text(f"{len(records):,} record(s) {what}:", style=style))
    for side, email, reason in records[:20]:
        console.print(f"  {side.upper()} {email}: {reason}")
    if len(records) > 20:
        console.print(f"  … {len(records) - 20:,} more (see --json)", style="dim")


def _deferred_line(plan: Plan) -> Text:
    return Text(
        f"{plan.deferred:,} more op(s) belong to other processes; the {plan.process} process leaves "
        "them, and their contacts' base, for those.",
        style="dim",
    )


def op_lines(op: Op) -> list[Text]:
    """The lines one op renders as: a head line, then one per changed field."""
    symbol, style = SYMBOLS[op.kind]
    head = Text(f"  {symbol} ", style=style) + Text(f"{op.kind:<24}", style=style)
    head.append(_subject(op))
    if op.reason:
        head.append(f"  ({op.reason})", style="dim")
    lines = [head]
    for name, change in op.changes.items():
        if op.kind == "conflict":
            lines.append(Text(f"        {name}: CRM {show(change.old)} vs ESP {show(change.new)}"))
        else:
            lines.append(Text(f"        {name}: {show(change.old)} -> {show(change.new)}"))
    return lines


def _subject(op: Op) -> str:
    if op.kind == "create_list":
        return f"list {op.list!r}"
    if op.kind == "create_field":
        return f"field {op.field} ({op.field_type})"
    subject = op.email or ("campaign" if op.kind == "record_activity" else "")
    if op.list is not None:
        preposition = {"add_member": "to", "record_activity": "on"}.get(op.kind, "from")
        subject += f"  {preposition} {op.list!r}"
    if op.side is not None:
        subject += f"  [{op.side.upper()}]"
    return subject


def show(value: Value) -> str:
    return "(empty)" if value is None else msgspec.json.encode(value).decode()


def summary_line(ops: Sequence[Op]) -> str:
    counts = summarise(ops)
    if not counts:
        return "Plan: no changes."
    parts = ", ".join(f"{count:,} {kind}" for kind, count in counts.items())
    return f"Plan: {parts} ({len(ops):,} ops)."


def as_json(plan: Plan, *, kinds: Sequence[str] = (), lists: Sequence[str] = ()) -> bytes:
    """``{"summary": {kind: count}, "ops": [...], "safety_stops": [...], "rejections": [...],
    "left_alone": [...]}``, plus ``process`` and ``deferred`` (ops left to other processes) for a
    plan cut to one process."""
    ops = select(plan.ops, kinds, lists)
    document: dict[str, Any] = {
        "summary": summarise(ops),
        "ops": ops,
        "safety_stops": list(plan.safety_stops),
        "rejections": [{"side": s, "email": e, "reason": r} for s, e, r in plan.rejections],
        "left_alone": [{"side": s, "email": e, "reason": r} for s, e, r in plan.left_alone],
    }
    if plan.process is not None:
        document |= {"process": plan.process, "deferred": plan.deferred}
    return msgspec.json.encode(document)
