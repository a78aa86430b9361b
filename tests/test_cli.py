"""The `listsync` command as a person or a script uses it: exit codes, output, saved plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.files_world import World, crm_person


def world_with_people(tmp_path: Path, n: int = 4) -> World:
    world = World(tmp_path)
    world.write("crm.jsonl", [crm_person(f"p{i}@example.com") for i in range(n)])
    return world


def test_validate_exits_0_for_valid_rules_and_2_for_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_with_people(tmp_path)
    assert main(["validate", str(world.root / "rules.toml")]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (world.root / "rules.toml").read_text().replace('direction = "both"', 'direction = "bothways"')
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "fields[1].direction" in err and '"both"' in err


def test_plan_json_has_a_summary_and_ops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = world_with_people(tmp_path)
    assert main(["plan", str(world.root / "rules.toml"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["upsert_contact"] == 4
    assert len(document["ops"]) == sum(document["summary"].values())
    assert {op["kind"] for op in document["ops"]} == set(document["summary"])


def test_plan_filters_by_kind_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = world_with_people(tmp_path)
    rules = str(world.root / "rules.toml")
    assert main(["plan", rules, "--json", "--kind", "add_member", "--list", "Everyone"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"] == {"add_member": 4}
    assert all(op["list"] == "Everyone" for op in document["ops"])


def test_detailed_exitcode_says_whether_there_are_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_with_people(tmp_path)
    rules = str(world.root / "rules.toml")
    assert main(["plan", rules, "--detailed-exitcode"]) == 2
    assert "Plan:" in capsys.readouterr().out
    assert main(["apply", rules, "--quiet"]) == 0
    assert "Applied:" in capsys.readouterr().out
    assert main(["plan", rules, "--detailed-exitcode"]) == 0
    assert "No changes." in capsys.readouterr().out


def test_a_saved_plan_applies_exactly_and_a_stale_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_with_people(tmp_path)
    rules, saved = str(world.root / "rules.toml"), str(tmp_path / "plan.json")
    assert main(["plan", rules, "--out", saved]) == 0
    world.write("crm.jsonl", [crm_person(f"p{i}@example.com") for i in range(6)])
    assert main(["apply", rules, "--plan", saved]) == 3
    assert "CRM data changed" in capsys.readouterr().err
    assert not (tmp_path / "esp.jsonl").exists()
    assert main(["plan", rules, "--out", saved]) == 0
    assert main(["apply", rules, "--plan", saved, "--quiet"]) == 0
    assert len(world.read("esp.jsonl")) == 6
    assert main(["apply", rules, "--plan", saved]) == 3  # the base moved: the same plan cannot apply twice


def test_the_files_demo_runs_end_to_end_and_ends_with_no_changes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "demo", "--esp", "files", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "blocked_resubscribe" in out and "conflict" in out
    assert "No changes." in out.split("planning once more")[1]


def test_each_process_plans_and_applies_its_own_part_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = world_with_people(tmp_path)
    rules = str(world.root / "rules.toml")
    assert main(["apply", rules, "--quiet"]) == 0
    world.edit("crm.jsonl", "p1@example.com", first_name="Renamed", lists=[])
    capsys.readouterr()
    assert main(["plan", rules, "--process", "members", "--json"]) == 0
    members = json.loads(capsys.readouterr().out)
    assert members["summary"] == {"remove_member": 1}  # the rename is the contacts process's
    assert main(["plan", rules, "--process", "contacts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"] == {"upsert_contact": 1}
    assert main(["apply", rules, "--process", "members", "--quiet"]) == 0
    assert "CRM Spring" not in world.read("esp.jsonl")["p1@example.com"]["lists"]
    assert world.read("esp.jsonl")["p1@example.com"]["FIRSTNAME"] != "Renamed"
    assert main(["apply", rules, "--process", "contacts", "--quiet"]) == 0
    assert world.read("esp.jsonl")["p1@example.com"]["FIRSTNAME"] == "Renamed"
    # The imports process makes no plan: it shows the open jobs, and follows them when applied.
    capsys.readouterr()
    assert main(["plan", rules, "--process", "imports"]) == 0
    assert "No open import jobs." in capsys.readouterr().out
    assert main(["apply", rules, "--process", "imports"]) == 0
    assert "Imports followed: no open jobs" in capsys.readouterr().out
    assert main(["plan", rules, "--detailed-exitcode"]) == 0
