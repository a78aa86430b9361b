"""Demo kits for `listsync demo`, and what they share.

Each vendor kit (`workbooks_dotdigital`, `workbooks_constantcontact`, `workbooks_mailchimp`) tells the
same story on `workbooks_kit.WorkbooksDemo`, over a generated Workbooks CRM (`workbooks_crm`); the
files kit lives with its adapter (`adapters.files.demo`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_FILE = "state.sqlite3"


def fresh_directory(target: Path) -> Path:
    """`target`, emptied: every demo run starts from the same generated data."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target


def rules_for_emulators(source: Path, target: Path, replacements: Mapping[str, str]) -> Path:
    """The rule file `source` written into the directory `target` for the emulators: its state file
    beside it (`STATE_FILE`), and each key of `replacements` (a placeholder such as an account name)
    replaced by its value. Secrets still come from the environment, as the rules say."""
    text = source.read_text(encoding="utf-8")
    for old, new in {f"state/{source.stem}.sqlite3": STATE_FILE, **replacements}.items():
        if old not in text:
            raise ValueError(f"{source} no longer holds {old!r}: the demo cannot point it at the emulators")
        text = text.replace(old, new)
    rules = target / source.name
    rules.write_text(text, encoding="utf-8")
    return rules
