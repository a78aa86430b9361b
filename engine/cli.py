"""The `listsync` command: validate, plan, apply, demo, emulate, auth, and the service's run, status,
history, approve and discard.

Exit codes follow terraform where it has one: 0 success (no changes with --detailed-exitcode),
1 error, 2 invalid rules (validate) or changes present (plan --detailed-exitcode), 3 a safety stop
or a refused saved plan.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from rich.console import Console
from rich.markup import escape

from engine.errors import ListsyncError, RulesError, SafetyStop, StalePlanError
from engine.logs import show_warnings
from engine.processes import DESCRIPTIONS, PROCESSES
from engine.registry import UnknownAdapter

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_SAFETY = 0, 1, 2, 3
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listsync", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check rule files; exit 0 when valid, 2 otherwise")
    validate.add_argument("rules", nargs="+", type=Path)

    plan = sub.add_parser("plan", help="show what a sync would do, without writing anything")
    plan.add_argument("rules", type=Path)
    _plan_options(plan)
    plan.add_argument("--out", type=Path, help="save the plan to FILE for `apply --plan FILE`")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 0 without changes, 2 with changes"
    )

    apply = sub.add_parser("apply", help="plan and apply, or apply a saved plan")
    apply.add_argument("rules", type=Path)
    apply.add_argument("--plan", type=Path, dest="plan_file", help="apply exactly this saved plan")
    apply.add_argument(
        "--incremental", action="store_true", help="read only what changed since the last sync"
    )
    apply.add_argument(
        "--override-safety", action="store_true", help="apply a plan held by a safety threshold"
    )
    apply.add_argument("--quiet", action="store_true", help="do not print the plan before applying")
    _process_option(apply)

    emulate = sub.add_parser("emulate", help="serve a vendor emulator with generated data on loopback")
    emulate.add_argument("name", help="workbooks, dotdigital, constant-contact or mailchimp")
    emulate.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    emulate.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    emulate.add_argument("--seed", type=int, default=1, help="seed of the generated data and the faults")
    emulate.add_argument(
        "--faults",
        metavar="SPEC",
        help="fail a share of calls, e.g. 500=0.1,503=0.05,429=0.05,timeout=0.05,drop=0.05,malformed=0.05"
        " (the ESPs also job_fail, job_stall; settings latency, retry_after, timeout_after, after_run)",
    )
    emulate.add_argument(
        "--contacts", type=_count, metavar="N", help="generate N contacts instead of the default (0: empty)"
    )
    emulate.add_argument(
        "--unlimited",
        action="store_true",
        help="lift the vendor's call rate limits (long crash and soak tests; listsync still paces itself)",
    )
    emulate.add_argument(
        "--state-file", type=Path, metavar="PATH", help="write the emulator's state there (JSON) on shutdown"
    )

    from engine import auth_commands
    from engine.service_commands import add_parsers

    add_parsers(sub)
    auth_commands.add_parsers(sub)

    demo = sub.add_parser("demo", help="run a self-contained demonstration")
    demo.add_argument(
        "--esp",
        default="dotdigital",
        help=(
            "which demo: dotdigital (Workbooks and Dotdigital, the default), constant-contact "
            "(Workbooks and Constant Contact), mailchimp (Workbooks and Mailchimp) or files"
        ),
    )
    demo.add_argument("--dir", type=Path, default=None, help="where the demo keeps its data")
    return parser


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return int(text)


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--incremental", action="store_true", help="read only what changed since the last sync"
    )
    _process_option(parser)
    parser.add_argument("--kind", action="append", default=[], help="show only ops of this kind (repeatable)")
    parser.add_argument(
        "--list", action="append", default=[], dest="lists", help="show only ops on this list"
    )
    parser.add_argument("--all", action="store_true", help="show every op, however many")


def _process_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--process",
        choices=PROCESSES,
        default=None,
        help="only this process's part: "
        + "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())
        + " (default: all of them)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        show_warnings()
    # soft_wrap: a plan line is never broken in two, whatever the width (or a pipe's 80 columns).
    # emoji off: rich would print "rules.toml:100:3" as "rules.toml💯3".
    out = Console(highlight=False, soft_wrap=True, emoji=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    try:
        return int(anyio.run(_dispatch, args, out, err, backend="asyncio"))
    except RulesError as error:
        for problem in error.problems:
            err.print(str(problem), markup=False, soft_wrap=True)
        return EXIT_INVALID
    except (SafetyStop, StalePlanError) as error:
        err.print(f"[bold red]Stopped:[/] {escape(str(error))}")
        return EXIT_SAFETY
    except (ListsyncError, UnknownAdapter) as error:
        # Escaped: a vendor's or a path's "[/...]" would otherwise be read as markup, and raise.
        err.print(f"[bold red]Error:[/] {escape(str(error))}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return 130


async def _dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    from engine import auth_commands, commands, service_commands

    handler = {
        "validate": commands.validate,
        "plan": commands.plan,
        "apply": commands.apply,
        "demo": commands.demo,
        "emulate": commands.emulate,
        "run": service_commands.run,
        "status": service_commands.status,
        "history": service_commands.history,
        "approve": service_commands.approve,
        "discard": service_commands.discard,
        "auth": auth_commands.auth,
    }[args.command]
    return await handler(args, out, err)


if __name__ == "__main__":
    sys.exit(main())
