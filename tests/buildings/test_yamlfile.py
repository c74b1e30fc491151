"""buildings.yamlfile on its own: a broken file's problems carry the right line and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from buildings.yamlfile import Problem, bad_scalar, clean_loc, read_tree, validation_problems


class Failed(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int
    when: dt.datetime | dt.date | str = "now"


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    items: list[Item]


def test_bad_yaml_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: x\nitems:\n  - name: a\n    size: [1, 2\n  - name: b\n", encoding="utf-8")
    with pytest.raises(Failed) as info:
        read_tree(str(path), Failed)
    [p] = info.value.problems
    assert (p.file, p.field, p.line) == (str(path), "(yaml)", 5)
    assert "indentation" in p.hint


def test_file_and_value_errors(tmp_path: Path) -> None:
    with pytest.raises(Failed) as info:
        read_tree(str(tmp_path / "none.yaml"), Failed)
    assert info.value.problems[0].field == "(file)"
    (tmp_path / "latin1.yaml").write_bytes(b"title: caf\xe9\n")
    with pytest.raises(Failed) as info:
        read_tree(str(tmp_path / "latin1.yaml"), Failed)
    assert "not UTF-8" in info.value.problems[0].message
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    assert read_tree(str(tmp_path / "list.yaml"), Failed) == [1, 2]
    with pytest.raises(Failed) as info:
        read_tree(str(tmp_path / "list.yaml"), Failed, mapping="expected a mapping")
    assert (info.value.problems[0].line, info.value.problems[0].field) == (1, "(file)")
    bad = tmp_path / "date.yaml"
    bad.write_text("title: x\nitems:\n  - name: a\n    size: 1\n    when: 2025-13-01\n", encoding="utf-8")
    with pytest.raises(Failed) as info:
        read_tree(str(bad), Failed)
    assert (info.value.problems[0].field, info.value.problems[0].line) == ("(yaml)", None)
    with pytest.raises(Failed) as info:
        read_tree(str(bad), Failed, bad_value=bad_scalar)
    assert (info.value.problems[0].field, info.value.problems[0].line) == ("items[0].when", 5)


def test_validation_problems_point_at_the_wrong_value(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: x\n"
                    "items:\n"
                    "  - name: a\n"
                    "    size: 1\n"
                    "  - name: b\n"
                    "    size: big\n"  # line 6: wrong type
                    "    colour: red\n"  # line 7: unknown key
                    "    when: [1]\n",  # line 8: fails every member of a union
                    encoding="utf-8")
    tree = read_tree(str(path), Failed)
    with pytest.raises(ValidationError) as info:
        Doc.model_validate(tree)
    problems = validation_problems(info.value, str(path), tree, members=("datetime", "date", "str"),
                                   hint=lambda err, loc: "rename it" if err["type"] == "extra_forbidden" else "",
                                   one_per_field=True)
    got = [(p.line, p.field) for p in problems]
    assert got == [(6, "items[1].size"), (8, "items[1].when"), (7, "items[1].colour")]
    size = problems[0]
    assert size.file == str(path) and "valid integer" in size.message and not size.hint
    assert problems[2].hint == "rename it"
    # with a prefix: the data validated is one item at items[1]
    with pytest.raises(ValidationError) as info:
        Item.model_validate(tree["items"][1])
    lines = {p.field: p.line for p in validation_problems(info.value, str(path), tree, ("items", 1))}
    assert lines["items[1].size"] == 6


def test_clean_loc_drops_what_is_not_in_the_file() -> None:
    assert clean_loc(("a", "function-after[_check(), Item]", 0, "b")) == ("a", 0, "b")
    assert clean_loc(("start", "datetime"), ("datetime", "date")) == ("start",)
    assert clean_loc(("date",)) == ("date",)
