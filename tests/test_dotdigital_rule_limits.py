"""The shipped Workbooks-to-Dotdigital rules, edited past Dotdigital's own limits, are refused by
`validate` with the file, line and key, before anything runs: data-field names (at most 20 letters,
digits, `-` or `_`), the data fields of each type (246 text, 50 numeric, 50 date, 50 yes/no) and
address-book names (at most 128 characters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.demos.workbooks_dotdigital import RULES
from engine.errors import RulesError
from engine.rules_loading import load_rules


def refused(tmp_path: Path, old: str, new: str) -> list[tuple[int, str, str]]:
    """Problems (line, key, message) of the shipped rules with `old` replaced by `new`."""
    text = RULES.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "rules.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    return [(problem.line, problem.path, problem.message) for problem in raised.value.problems]


def line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "rules.toml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_a_data_field_name_dotdigital_would_refuse(tmp_path: Path) -> None:
    [(line, key, message), (_, _, pattern)] = refused(
        tmp_path, 'esp = "INTERESTS"', 'esp = "AREAS_OF_INTEREST_TOO"'
    )
    assert (line, key) == (line_of(tmp_path, "AREAS_OF_INTEREST_TOO"), "fields[2].esp")
    assert message == 'ESP field name "AREAS_OF_INTEREST_TOO" is 21 characters; the ESP allows 20'
    assert "pattern ^[A-Za-z0-9_-]{1,20}$" in pattern
    [(_, key, message)] = refused(tmp_path, 'esp = "INTERESTS"', 'esp = "INTERESTS NOW"')
    assert key == "fields[2].esp" and "pattern" in message


def test_more_numeric_fields_than_dotdigital_allows(tmp_path: Path) -> None:
    extra = "".join(f'\n[[fields]]\ncrm = "cf_n{n}"\nesp = "N{n}"\ntype = "numeric"\n' for n in range(50))
    found = refused(tmp_path, "\n[consent]", extra + "\n[consent]")
    assert [message for _, _, message in found] == [
        "51 numeric fields are mapped, but the ESP allows 50 (the esp adapter's limit)"
    ]


def test_an_address_book_name_longer_than_dotdigital_allows(tmp_path: Path) -> None:
    [(line, key, message)] = refused(
        tmp_path, 'template = "{cf_marketing_campaign_public_name:.120}"', 'template = "CRM {name:.200}"'
    )
    assert (line, key) == (line_of(tmp_path, 'template = "CRM {name:.200}"'), "lists.template")
    assert "allows 128" in message
