"""`listsync demo --esp dotdigital|constant-contact|mailchimp` as a person runs it: each Workbooks demo
syncs both emulators through the whole story, shows what each process did, exits 0 and ends with
nothing left to plan; and the rule files they ship are valid as they are."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.demos import REPO
from engine.cli import main

RULES = ("workbooks-dotdigital.toml", "workbooks-constantcontact.toml", "workbooks-mailchimp.toml")
# What each process's section shows, whatever the ESP.
SHOWN = {
    "members": ("opt_out_esp", "opt_out_crm", "remove_member", "blocked_resubscribe"),
    "contacts": ("upsert_contact",),
    "activity": ("record_activity", "mark_undeliverable_crm", "campaign totals from the ESP"),
    "imports": ("Imports followed",),
}
# And what only one ESP's shows.
ESP_SHOWN = {
    "dotdigital": {"members": ("(opted out in the ESP (hard_bounce))",)},
    "constant-contact": {"activity": ("hard bounce in the ESP (code ",)},
    "mailchimp": {"members": ("(opted out in the ESP (hard_bounce))",)},
}


@pytest.mark.parametrize("rules", RULES)
def test_the_shipped_workbooks_rules_are_valid(rules: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "rules" / rules)]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


@pytest.mark.slow
@pytest.mark.parametrize("esp", ["dotdigital", "constant-contact", "mailchimp"])
def test_each_workbooks_demo_syncs_both_emulators_and_settles(tmp_path: Path, esp: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "demo", "--esp", esp, "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.split("2. Changes made on both sides")[0]
    assert "create_list" in first and "add_member" in first and "opt_out_crm" in first
    sections = dict(zip(SHOWN, re.split(r"3[a-d]\. The \w+ process", result.stdout)[1:], strict=True))
    for process, section in sections.items():
        for text in (*SHOWN[process], *ESP_SHOWN[esp].get(process, ())):
            assert text in section, (esp, process, text)
        assert "0 rejected" in section, (esp, process)
    last = result.stdout.split("4. Planning once more")[1]
    assert "Plan: no changes." in last
    # The summary: a row per step with what it did, then the last plan's outcome.
    summary = last.split("Summary")[1]
    rows = {line.split("│")[0].strip(): line for line in summary.splitlines() if "│" in line}
    assert list(rows) == ["1. initial sync", "3a. members", "3b. contacts", "3c. activity", "3d. imports"]
    assert re.search(r"│\s+[1-9][\d,]* │\s+0 │\s+0 │", rows["1. initial sync"])
    assert "Last plan: no changes; rejected and left unchanged: " in summary
