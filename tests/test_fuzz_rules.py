"""Fuzzing rule files: whatever a rule file holds, listsync answers with rules or with located problems.

A rule file is written by hand, so it can hold anything. Loading one (`engine.rules_loading`) and
`listsync validate` must give either a valid rule set or a `RulesError` whose every problem names the
file and, where the input has lines, a line and column inside it, one problem per output line;
never a traceback, and `validate` exits 0 or 2, nothing else. `plan` and `apply` on a file that does
not load must exit 2 and leave the state database and the data files byte for byte as they were.

Inputs (`tests/fuzz_toml.py`): the real rule sets (`rules/*.toml`, `tests/rules_cases/complete.toml`)
mutated as data (keys dropped, misspelt, moved or added; values of the wrong type, out of range,
empty, huge, unicode; bad durations, templates and field mappings; tables repeated or retyped) and
written back as TOML; the same files mutated as text (lines dropped, repeated, swapped, cut short,
junk inserted); and arbitrary text and bytes.

Running: the default run keeps each test to a few seconds. `LISTSYNC_FUZZ=long` (`bin/fuzz`) runs
forty times as many examples. Hypothesis keeps failing examples in `.hypothesis/` (ignored by git)
and replays them first; each bug found is pinned below with `@example`.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import tomllib
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import msgspec
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from engine.cli import main
from engine.errors import PermanentError, RulesError
from engine.rules_loading import LoadedRules, load_rules, resolve_secret
from engine.ruleset import RuleSet, SecretRef
from tests.fuzz_toml import ROOT, base_documents, dumps, mutated_documents, mutated_texts
from tests.support import fuzz_settings

BASES = base_documents()
DOCUMENTS = [document for _, _, document in BASES]
TEXTS = [text for _, text, _ in BASES]
DEMO = (ROOT / "rules" / "demo-files.toml").read_text(encoding="utf-8")
_UNKNOWN_KEY = re.compile(r'^unknown key "(?P<key>[A-Za-z0-9_-]+)"')


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`listsync argv...` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def as_read(raw: bytes) -> str | None:
    """The text the loader sees (UTF-8, universal newlines, a BOM dropped), or None if not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def assert_located(error: RulesError, path: Path, raw: bytes) -> None:
    """Every problem names the file, stands on one line, and points inside the file at its key."""
    text = as_read(raw)
    lines = text.split("\n") if text is not None else []
    assert error.problems
    for problem in error.problems:
        shown = str(problem)
        assert problem.file == str(path) and shown.startswith(f"{path}:")
        assert problem.message.strip()
        assert not set(shown) & set("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), shown
        assert len(shown) <= len(str(path)) + 1200, shown
        if text is None:
            assert "UTF-8" in problem.message  # no lines to point at
            continue
        assert 1 <= problem.line <= len(lines), (problem, len(lines))
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1, problem
        unknown = _UNKNOWN_KEY.match(problem.message)
        if unknown is not None:
            assert unknown.group("key") in lines[problem.line - 1], problem


def check(path: Path, raw: bytes) -> bool:
    """Load and validate the rule file `raw` at `path`; True when it is valid."""
    path.write_bytes(raw)
    try:
        loaded = load_rules(path)
    except RulesError as error:
        assert_located(error, path, raw)
        code, _, err = run_cli("validate", str(path))
        assert code == 2
        for problem in error.problems:
            assert f"{problem.file}:{problem.line}:{problem.column}: " in err
        return False
    assert isinstance(loaded.rules, RuleSet)
    assert msgspec.convert(msgspec.to_builtins(loaded.rules), RuleSet) == loaded.rules
    code, out, _ = run_cli("validate", str(path))
    assert (code, out.strip()) == (0, f"{path}: valid")
    return True


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-rules")


def test_the_generated_toml_reads_back_as_written() -> None:
    for document in DOCUMENTS:
        assert tomllib.loads(dumps(document)) == document


def test_the_real_rule_sets_are_valid(scratch: Path) -> None:
    for path, text, _ in BASES:
        assert check(scratch / path.name, text.encode()), path


@fuzz_settings(120)
@given(document=mutated_documents(DOCUMENTS))
# Found by fuzzing: a key's control character printed raw split a problem over two lines.
@example({**DOCUMENTS[0], "crm": {"\x1e": ""}})
# Found by fuzzing: a huge key was echoed whole, twice (path and message), and a huge adapter name
# was looked up and echoed whole.
@example({**DOCUMENTS[1], "ẞ" * 300: 1})
@example({**DOCUMENTS[0], "crm": {**DOCUMENTS[0]["crm"], "adapter": "ẞ" * 1093}})
def test_mutated_rule_sets_load_or_fail_with_located_problems(
    scratch: Path, document: dict[str, object]
) -> None:
    check(scratch / "mutated.toml", dumps(document).encode())


def _line_100(line: str) -> str:
    lines = DEMO.split("\n")
    assert len(lines) > 100
    return "\n".join([*lines[:99], line, *lines[99:]])


@fuzz_settings(120)
@given(text=mutated_texts(TEXTS))
# Found by fuzzing: `validate` printed "rules.toml:100:1" as "rules.toml💯1" (rich's emoji codes).
@example(_line_100("[crm]"))
# Found by fuzzing: a UTF-8 byte-order mark made a valid file a syntax error.
@example("\ufeff" + DEMO)
# Found by fuzzing: tomllib's message quoted a whole huge key.
@example(f'["{"ẞ" * 400}"]\n["{"ẞ" * 400}"]\n')
def test_rule_files_edited_line_by_line_load_or_fail_with_located_problems(scratch: Path, text: str) -> None:
    check(scratch / "edited.toml", text.encode())


@fuzz_settings(60)
@given(raw=st.binary(max_size=600) | st.text(max_size=600).map(str.encode))
# Found by fuzzing: an error "at end of document" was put on a line past the end, counting "\x0b".
@example(b"'\x0b\x00")
# Found by fuzzing: with the "utf-8-sig" codec, a file of the one byte 0xEF read as empty.
@example(b"\xef")
@example("x = 1\u2028\n'".encode())
def test_arbitrary_bytes_fail_with_located_problems(scratch: Path, raw: bytes) -> None:
    check(scratch / "junk.toml", raw)


def _demo_with(old: str, new: str) -> str:
    assert old in DEMO
    return DEMO.replace(old, new)


# Found by fuzzing: each loaded as valid (or raised) and then failed at `plan` with a traceback.
PINNED = {
    "home of an unknown user": (_demo_with('"state.sqlite3"', '"~nosuchuser-listsync/s.sqlite3"'), "state"),
    "NUL in the state path": (_demo_with('"state.sqlite3"', '"a\\u0000b"'), "state"),
    "NUL in a settings path": (_demo_with('path = "esp.jsonl"', 'path = "e\\u0000sp"'), "esp.settings.path"),
    "unknown conversion": (_demo_with("CRM {name:.100}", "CRM {name!z:.10}"), "lists.template"),
    "huge width": (_demo_with("CRM {name:.100}", "{name:900000000}"), "lists.template"),
    "deep nesting": (DEMO + "x = " + "[" * 3000 + "]" * 3000 + "\n", ""),
}


@pytest.mark.parametrize("case", PINNED)
def test_found_by_fuzzing_refused_by_the_loader_at_their_key(scratch: Path, case: str) -> None:
    text, where = PINNED[case]
    path = scratch / "pinned.toml"
    started = time.perf_counter()
    assert not check(path, text.encode())
    assert time.perf_counter() - started < 2  # a width is checked, not built
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert [problem.path for problem in raised.value.problems] == [where]


def test_a_secret_file_in_the_home_of_an_unknown_user_is_a_permanent_error(scratch: Path) -> None:
    # Like `state`, found by fuzzing: Path.expanduser raised RuntimeError at run time.
    with pytest.raises(PermanentError, match="home directory"):
        resolve_secret(SecretRef(file="~nosuchuser-listsync/secret.txt"), scratch)


def test_a_missing_or_unreadable_rule_file_is_a_problem_naming_it(scratch: Path) -> None:
    for path in (scratch / "missing.toml", scratch):
        with pytest.raises(RulesError) as raised:
            load_rules(path)
        assert [problem.file for problem in raised.value.problems] == [str(path)]
        code, _, err = run_cli("validate", str(path))
        assert code == 2 and f"{path}:" in err


# -- plan and apply on generated rule files ----------------------------------------------------------------
PEOPLE = [
    {"email": f"p{i}@example.com", "opted_out": i == 3, "lists": ["C1"], "first_name": f"P{i}"}
    for i in range(6)
]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo rule set over a few people in files, synced once so that the state has a base."""
    root = tmp_path_factory.mktemp("fuzz-world")
    shutil.copy(ROOT / "rules" / "demo-files.toml", root / "rules.toml")
    (root / "crm.jsonl").write_bytes(b"".join(msgspec.json.encode(p) + b"\n" for p in PEOPLE))
    (root / "esp.jsonl").write_bytes(b"")
    (root / "campaigns.jsonl").write_bytes(b'{"key": "C1", "name": "Spring", "status": "open"}\n')
    code, _, err = run_cli("apply", str(root / "rules.toml"), "--quiet")
    assert code == 0, err
    return root


def stays_in(root: Path, loaded: LoadedRules) -> bool:
    """Whether every path the rules name (state, files) is inside `root`, so planning is harmless."""
    paths = [loaded.state_path]
    for settings in (loaded.crm_settings, loaded.esp_settings):
        for name in ("path", "campaigns", "delta"):
            value = getattr(settings, name, None)
            if isinstance(value, str):
                paths.append(root / value)
    return all(path.resolve().is_relative_to(root.resolve()) for path in paths)


def contents(root: Path, leave_out: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path != leave_out:
            yield str(path.relative_to(root)), path.read_bytes()


@fuzz_settings(40)
@given(
    text=mutated_texts([DEMO]) | mutated_documents([tomllib.loads(DEMO)]).map(dumps),
    command=st.sampled_from(["plan", "apply"]),
)
def test_plan_and_apply_refuse_a_broken_rule_file_and_leave_the_state_as_it_was(
    synced: Path, text: str, command: str
) -> None:
    """A file that does not load changes nothing; one that does is planned without a traceback."""
    rules = synced / "fuzzed.toml"
    valid = check(rules, text.encode())
    event("valid" if valid else "invalid")
    if valid:
        if stays_in(synced, load_rules(rules)):
            code, _, err = run_cli("plan", str(rules))  # never apply: it may be any valid rule set
            assert code in (0, 1, 2, 3) and (code != 1 or "Error:" in err), err
        return
    before = dict(contents(synced, rules))
    assert "state.sqlite3" in before
    code, out, err = run_cli(command, str(rules))
    assert code == 2, err
    assert f"{rules}:" in err and not out
    assert dict(contents(synced, rules)) == before
