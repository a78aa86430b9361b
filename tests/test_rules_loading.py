"""Rule files: every kind of mistake is reported at its key, all of them at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from msgspec import Struct

from engine import registry, rules_loading
from engine.contract import Capabilities
from engine.errors import PermanentError, RuleProblem, RulesError
from engine.rules_loading import load_rules, resolve_secret
from engine.ruleset import SecretRef, Side

CASES = Path(__file__).parent / "rules_cases"

BASE = """\
name = "t"
state = "state.sqlite"

[crm]
adapter = "fake"
settings = { path = "crm.jsonl" }

[esp]
adapter = "fake"
settings = { path = "esp.jsonl" }

[campaigns]
integrated = ["*"]
"""
# Snippets appended to BASE start on this line.
AFTER = BASE.count("\n") + 1


class FakeSettings(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    path: str
    api_key: SecretRef | None = None
    mode: Literal["full", "delta"] = "full"


class FakeAdapter:
    """Stands in for an installed adapter: settings type and capabilities, nothing else."""

    name: ClassVar[str] = "fake"
    settings_type: ClassVar[type[Struct]] = FakeSettings

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities:
        if side == "crm":
            return Capabilities(campaign_field_lengths={"name": 255, "key": 12, "public_name": 80})
        return Capabilities(
            max_batch=1000,
            max_list_name=255,
            reserved_list_names=frozenset({"All Contacts"}),
            field_name_max=12,
            field_name_pattern=r"[A-Z][A-Z0-9_]*",
            field_limits={"text": 3, "total": 10},
        )


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(name: str) -> Any:
        if name == "fake":
            return FakeAdapter
        raise registry.UnknownAdapter(name)

    monkeypatch.setattr(rules_loading, "adapter_factory", factory)
    monkeypatch.setattr(registry, "available", lambda: {"fake": "tests:FakeAdapter"})


def problems(tmp_path: Path, text: str, *, check_adapters: bool = False) -> list[RuleProblem]:
    rule_file = tmp_path / "rules.toml"
    rule_file.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(rule_file, check_adapters=check_adapters)
    assert all(problem.file == str(rule_file) for problem in caught.value.problems)
    return list(caught.value.problems)


def at(found: list[RuleProblem]) -> list[tuple[int, int, str]]:
    return [(problem.line, problem.column, problem.path) for problem in found]


def test_complete_rule_file_loads() -> None:
    loaded = load_rules(CASES / "complete.toml", check_adapters=False)
    assert loaded.path == (CASES / "complete.toml").resolve()
    assert loaded.base_dir == CASES.resolve()
    assert loaded.state_path == CASES.resolve() / "state" / "workbooks-dotdigital.sqlite"
    assert loaded.rules.name == "workbooks-dotdigital"
    assert [field.esp for field in loaded.rules.fields] == [
        "FIRSTNAME",
        "COMPANY",
        "CUSTOMER_SINCE",
        "SCORE",
    ]
    assert loaded.rules.fields[1].crm_field_for("lead") == "org_name"
    assert loaded.rules.esp.limits.fields.text == 246
    assert loaded.crm_settings is None


def test_complete_rule_file_loads_with_adapter_settings(fake_registry: None, tmp_path: Path) -> None:
    text = BASE.replace('{ path = "esp.jsonl" }', '{ path = "esp.jsonl", api_key = { env = "K" } }')
    rule_file = tmp_path / "rules.toml"
    rule_file.write_text(text, encoding="utf-8")
    loaded = load_rules(rule_file)
    assert loaded.esp_settings == FakeSettings(path="esp.jsonl", api_key=SecretRef(env="K"))
    assert loaded.esp_capabilities is not None
    assert loaded.esp_capabilities.max_list_name == 255


def test_toml_syntax_error(tmp_path: Path) -> None:
    found = problems(tmp_path, 'name = "t"\nstate = \n')
    assert at(found) == [(2, 9, "")]
    assert "TOML syntax error: Invalid value" in found[0].message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    found = problems(tmp_path, 'nmae = "t"\nstate = "s"\n' + BASE[BASE.index("[crm]") :])
    assert at(found) == [(1, 1, "nmae"), (1, 1, "name")]
    assert found[0].message == 'unknown key "nmae"; did you mean "name"?'


def test_unknown_key_in_nested_table(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "\n[esp.limits]\nbatch_sise = 10\n")
    assert at(found) == [(AFTER + 2, 1, "esp.limits.batch_sise")]
    assert found[0].message == 'unknown key "batch_sise"; did you mean "batch_size"?'


def test_unknown_key_in_inline_table(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "\n[esp.limits]\nfields = { text = 5, txt = 2 }\n")
    assert at(found) == [(AFTER + 2, 22, "esp.limits.fields.txt")]
    assert found[0].message == 'unknown key "txt"; did you mean "text"?'


def test_unknown_key_in_fields(tmp_path: Path) -> None:
    text = BASE + '\n[[fields]]\ncrm = "a"\nesp = "A"\n\n[[fields]]\ncrm = "b"\nesp = "B"\ntyp = "date"\n'
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 8, 1, "fields[1].typ")]
    assert found[0].message == 'unknown key "typ"; did you mean "type"?'


def test_wrong_type(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[safety]\nmin_list_size = "20"\n')
    assert at(found) == [(AFTER + 2, 1, "safety.min_list_size")]
    assert found[0].message == 'expected an integer, found a string ("20")'


def test_bad_enum_value_suggests(tmp_path: Path) -> None:
    text = BASE + '\n[[fields]]\ncrm = "a"\nesp = "A"\ndirection = "crm_to_eps"\n'
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 4, 1, "fields[0].direction")]
    assert found[0].message == (
        'invalid value "crm_to_eps"; expected one of "crm_to_esp", "esp_to_crm", "both"; '
        'did you mean "crm_to_esp"?'
    )


def test_bad_enum_value_in_array(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[entities]\nkinds = ["person", "leed"]\n')
    assert at(found) == [(AFTER + 2, 20, "entities.kinds[1]")]
    assert found[0].message.endswith('did you mean "lead"?')


def test_bad_duration(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[intervals]\nmembers = "15 minutes"\n')
    assert at(found) == [(AFTER + 2, 1, "intervals.members")]
    assert found[0].message == 'expected a duration such as 30s, 15m, 1h or 1d, found "15 minutes"'


def test_missing_required_key(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[[fields]]\nesp = "A"\n')
    assert at(found) == [(AFTER + 1, 3, "fields[0].crm")]
    assert found[0].message == 'missing required key "crm"'


def test_inline_secret_refused_without_echoing_it(tmp_path: Path) -> None:
    text = BASE.replace('{ path = "esp.jsonl" }', '{ path = "esp.jsonl", api_key = "hunter2" }')
    found = problems(tmp_path, text)
    assert at(found) == [(10, 34, "esp.settings.api_key")]
    assert '{ env = "VAR" }' in found[0].message
    assert '{ file = "path" }' in found[0].message
    assert "hunter2" not in str(RulesError(found))


def test_inline_secret_refused_by_adapter_type(fake_registry: None, tmp_path: Path) -> None:
    # The settings type says SecretRef; the key name alone would not have caught it.
    text = BASE.replace('{ path = "esp.jsonl" }', '{ path = "esp.jsonl", mode = "ful", api_key = 12345 }')
    found = problems(tmp_path, text, check_adapters=True)
    assert at(found) == [(10, 34, "esp.settings.mode"), (10, 48, "esp.settings.api_key")]
    assert found[0].message == 'invalid value; expected one of "full", "delta"; did you mean "full"?'
    assert found[1].message == (
        'expected a secret reference; secrets come from { env = "VAR" } or { file = "path" }, never inline'
    )
    assert "12345" not in found[1].message


def test_secret_ref_with_both_env_and_file(tmp_path: Path) -> None:
    text = BASE.replace(
        '{ path = "crm.jsonl" }', '{ path = "crm.jsonl", token = { env = "T", file = "t.txt" } }'
    )
    found = problems(tmp_path, text)
    assert at(found) == [(6, 34, "crm.settings.token")]
    assert found[0].message == "a secret names exactly one of `env` or `file`"


def test_duplicate_esp_field_names_ignore_case(tmp_path: Path) -> None:
    text = BASE + '\n[[fields]]\ncrm = "a"\nesp = "Email"\n\n[[fields]]\ncrm = "b"\nesp = "EMAIL"\n'
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 7, 1, "fields[1].esp")]
    assert "fields[0]" in found[0].message


def test_duplicate_crm_field_for_same_kind(tmp_path: Path) -> None:
    text = (
        BASE
        + '\n[[fields]]\ncrm = "a"\nesp = "A"\napplies_to = "person"\n'
        + '\n[[fields]]\ncrm = "a"\nesp = "B"\napplies_to = "lead"\n'
        + '\n[[fields]]\ncrm = "x"\ncrm_lead = "a"\nesp = "C"\n'
    )
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 13, 1, "fields[2].crm_lead")]
    assert found[0].message == 'CRM lead field "a" is already mapped by fields[1]'


def test_too_many_fields_for_a_type_limit(tmp_path: Path) -> None:
    fields = "".join(f'\n[[fields]]\ncrm = "f{n}"\nesp = "F{n}"\ntype = "date"\n' for n in range(3))
    found = problems(tmp_path, BASE + "\n[esp.limits.fields]\ndate = 2\n" + fields)
    assert at(found) == [(AFTER + 14, 3, "fields[2]")]
    assert found[0].message == "3 date fields are mapped, but the ESP allows 2 (esp.limits.fields.date)"


def test_too_many_fields_for_the_adapter(fake_registry: None, tmp_path: Path) -> None:
    fields = "".join(f'\n[[fields]]\ncrm = "f{n}"\nesp = "F{n}"\n' for n in range(4))
    found = problems(tmp_path, BASE + fields, check_adapters=True)
    assert at(found) == [(AFTER + 13, 3, "fields[3]")]
    assert found[0].message == "4 text fields are mapped, but the ESP allows 3 (the esp adapter's limit)"


def test_esp_field_name_rules(fake_registry: None, tmp_path: Path) -> None:
    text = (
        BASE
        + '\n[[fields]]\ncrm = "a"\nesp = "first name"\n'
        + '\n[[fields]]\ncrm = "b"\nesp = "A_VERY_LONG_NAME"\n'
    )
    found = problems(tmp_path, text, check_adapters=True)
    assert at(found) == [(AFTER + 3, 1, "fields[0].esp"), (AFTER + 7, 1, "fields[1].esp")]
    assert "pattern" in found[0].message
    assert found[1].message == 'ESP field name "A_VERY_LONG_NAME" is 16 characters; the ESP allows 12'


def test_template_placeholder_unknown(fake_registry: None, tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[lists]\ntemplate = "{publc_name} {key}"\n', check_adapters=True)
    assert at(found) == [(AFTER + 2, 1, "lists.template")]
    assert found[0].message == (
        "unknown placeholder {publc_name}; did you mean {public_name}? "
        "(the CRM offers: key, name, status, public_name)"
    )


def test_template_too_long_suggests_precision(fake_registry: None, tmp_path: Path) -> None:
    found = problems(
        tmp_path, BASE + '\n[lists]\nfallback = "Campaign {name} ({key})"\n', check_adapters=True
    )
    assert at(found) == [(AFTER + 2, 1, "lists.fallback")]
    # 12 literal characters + name 255 + key 12 = 279, over 255: name may keep 255 - 24 = 231.
    assert found[0].message == (
        "list names from this template can be 279 characters long, but the ESP allows 255; "
        "truncate a placeholder, e.g. {name:.231}"
    )


def test_truncated_template_passes(fake_registry: None, tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.toml"
    text = BASE + '\n[lists]\ntemplate = "Campaign {name:.231} ({key})"\nmaster = "Synced"\n'
    rule_file.write_text(text, encoding="utf-8")
    assert load_rules(rule_file).rules.lists.template == "Campaign {name:.231} ({key})"


def test_master_list_reserved(fake_registry: None, tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + '\n[lists]\nmaster = "all contacts"\n', check_adapters=True)
    assert at(found) == [(AFTER + 2, 1, "lists.master")]
    assert "reserves" in found[0].message


def test_batch_size_above_adapter_maximum(fake_registry: None, tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "\n[esp.limits]\nbatch_size = 5000\n", check_adapters=True)
    assert at(found) == [(AFTER + 2, 1, "esp.limits.batch_size")]
    assert found[0].message == "batch size 5000 is above the esp adapter's maximum of 1000"


def test_owner_contradicting_direction(tmp_path: Path) -> None:
    text = BASE + '\n[[fields]]\ncrm = "a"\nesp = "A"\ndirection = "crm_to_esp"\nowner = "esp"\n'
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 5, 1, "fields[0].owner")]
    assert 'contradicts direction "crm_to_esp"' in found[0].message


def test_crm_lead_on_a_person_only_field(tmp_path: Path) -> None:
    text = BASE + '\n[[fields]]\ncrm = "a"\nesp = "A"\napplies_to = "person"\ncrm_lead = "b"\n'
    found = problems(tmp_path, text)
    assert at(found) == [(AFTER + 5, 1, "fields[0].crm_lead")]


def test_nothing_integrated_and_no_kinds(tmp_path: Path) -> None:
    text = BASE.replace('integrated = ["*"]', "integrated = []") + "\n[entities]\nkinds = []\n"
    found = problems(tmp_path, text)
    assert at(found) == [(13, 1, "campaigns.integrated"), (AFTER + 2, 1, "entities.kinds")]
    assert found[0].message.startswith("no campaign is integrated")


def test_unknown_adapter_with_suggestion(fake_registry: None, tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        BASE.replace(
            'adapter = "fake"\nsettings = { path = "esp',
            'adapter = "fak"\nsettings = { path = "esp',
        ),
        check_adapters=True,
    )
    assert at(found) == [(9, 1, "esp.adapter")]
    assert found[0].message == "unknown adapter 'fak'; did you mean 'fake'? (installed: fake)"


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = (
        BASE.replace('state = "state.sqlite"\n', "")
        + '\n[[fields]]\ncrm = "a"\nesp = "A"\ntype = "txt"\n'
        + '\n[[fields]]\ncrm = "b"\nesp = "B"\nowner = "esp"\n'
        + "\n[safety]\nmax_remove_share = 1.5\noutage_gaurd = false\n"
    )
    found = problems(tmp_path, text)
    after = AFTER - 1
    assert at(found) == [
        (1, 1, "state"),
        (after + 4, 1, "fields[0].type"),
        (after + 9, 1, "fields[1].owner"),
        (after + 12, 1, "safety.max_remove_share"),
        (after + 13, 1, "safety.outage_gaurd"),
    ]
    assert found[3].message == "must be at most 1.0, found 1.5"
    assert str(found[0]) == f'{tmp_path / "rules.toml"}:1:1: state: missing required key "state"'


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "missing.toml")
    assert "cannot read the rule file" in str(caught.value)


def test_resolve_secret_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LISTSYNC_TEST_SECRET", "s3cret")
    (tmp_path / "key.txt").write_text("from-file\n", encoding="utf-8")
    assert resolve_secret(SecretRef(env="LISTSYNC_TEST_SECRET"), tmp_path) == "s3cret"
    assert resolve_secret(SecretRef(file="key.txt"), tmp_path) == "from-file"


def test_resolve_secret_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LISTSYNC_TEST_SECRET", raising=False)
    with pytest.raises(PermanentError, match="LISTSYNC_TEST_SECRET"):
        resolve_secret(SecretRef(env="LISTSYNC_TEST_SECRET"), tmp_path)
    with pytest.raises(PermanentError, match=r"nope\.txt"):
        resolve_secret(SecretRef(file="nope.txt"), tmp_path)


def test_the_complete_example_in_the_rules_readme_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "rules" / "README.md").read_text()
    example = readme.split("## A complete example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "rules.toml").write_text(example)
    loaded = load_rules(tmp_path / "rules.toml")
    assert loaded.rules.activity.totals.named() == {"sends": "cf_emails_sent", "opens": "cf_email_opens"}
