"""Our YAML files read with line numbers, and their errors as Problems (file, line, field, message, hint).

Site files, policies, programme files, scenarios and rule libraries are all read the same way: ruamel's
round-trip loader keeps the line of every node, pydantic checks the shape, and each pydantic error is mapped back
along its location to the line a technician should look at. This module is that one implementation; each loader
passes its own exception type (SiteError, PolicyError, ...) and, where it has them, its own hints.

It imports nothing else of ours, so every package may use it (``buildings.site`` re-exports ``Problem``).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


def yaml_files(path: str) -> list[str]:
    """The YAML files at ``path``: the file itself, or every *.yaml / *.yml in the folder, sorted.

    Names starting with ``_`` are shared data, not one of the folder's items (``_defaults.yaml``).
    """
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if re.search(r"\.ya?ml$", n) and not n.startswith("_"))
        return [os.path.join(path, n) for n in names]
    return [path]


def suggest(word: str, choices: Collection[str]) -> str:
    """' (did you mean X?)' for the closest known word, or '' when nothing is close: every "did you mean" hint."""
    by_case = {c.lower(): c for c in choices}
    if word.lower() in by_case:  # "KW" -> "kW", "degc" -> "degC": difflib rates short case slips too low
        return f" (did you mean {by_case[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Problem(BaseModel):
    """One thing wrong in one of our YAML files, with where it is and what to do."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        hint = f" Hint: {self.hint}" if self.hint else ""
        return f"{where}: {self.field}: {self.message}.{hint}"


YAML_HINT = "check indentation and quotes around this line"
VALUE_HINT = "check dates (YYYY-MM-DD) and numbers"


def line_of(tree: Any, loc: Loc) -> int | None:
    """Walk a ruamel round-trip tree along a pydantic loc and return the deepest 1-based line known."""
    line: int | None = None
    cur = tree
    for part in loc:
        try:
            if isinstance(part, int) and isinstance(cur, list):
                line = cur.lc.item(part)[0] + 1
                cur = cur[part]
            elif isinstance(cur, dict) and part in cur:
                line = cur.lc.key(part)[0] + 1
                cur = cur[part]
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    if line is None and hasattr(tree, "lc"):
        line = tree.lc.line + 1
    return line


def field_name(loc: Loc) -> str:
    """A loc as the field a user reads: ``equipment[0].points[2].unit``; ``(file)`` for the whole file."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def plain(tree: Any) -> Any:
    """ruamel's commented containers to plain dicts and lists (pydantic wants plain types)."""
    if isinstance(tree, dict):
        return {str(k): plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return tree


_VALIDATOR_PART = re.compile(r"function-(?:after|before|wrap|plain)\[")


def clean_loc(loc: Loc, members: Collection[str] = ()) -> Loc:
    """A pydantic loc without the parts that are not in the file: validator wrappers (``function-after[...]``)
    and the names of union members (``members``: e.g. Condition, All or datetime, date, str), which pydantic puts
    in the loc of an error inside one branch of a union."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p in members or _VALIDATOR_PART.search(p))))


def invalid_value(path: str, exc: ValueError) -> Problem:
    """The Problem for a scalar ruamel cannot build (it raises a bare ValueError, e.g. for the date 2025-13-01)."""
    return Problem(file=path, line=None, field="(yaml)", message=f"invalid value: {exc}", hint=VALUE_HINT)


def read_tree(path: str, error: Callable[[list[Problem]], Exception], *, yaml_hint: str = YAML_HINT,
              bad_value: Callable[[str, ValueError], Problem] = invalid_value, mapping: str | None = None,
              mapping_hint: str = "") -> Any:
    """The ruamel round-trip tree of a YAML file (None for an empty one); raise ``error(problems)`` if the file
    cannot be read or parsed: a YAML syntax error with its line, a missing file, text that is not UTF-8, a value
    that cannot be built (``bad_value`` makes that Problem; ``bad_scalar`` finds its line). With ``mapping`` (the
    message, e.g. "expected a mapping with name: and faults:"), anything but a mapping at the top is a problem too.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        with open(path, encoding="utf-8") as fh:
            tree = YAML(typ="rt").load(fh)
        if mapping is None or isinstance(tree, dict):
            return tree
        problem = Problem(file=path, line=1, field="(file)", message=mapping, hint=mapping_hint)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = Problem(file=path, line=mark.line + 1 if mark else None, field="(yaml)",
                          message=str(getattr(exc, "problem", exc)), hint=yaml_hint)
    except OSError as exc:
        problem = Problem(file=path, line=None, field="(file)", message=exc.strerror or str(exc))
    except UnicodeDecodeError as exc:
        problem = Problem(file=path, line=None, field="(file)", message=f"not UTF-8 text (byte {exc.start})",
                          hint="save the file as UTF-8")
    except ValueError as exc:  # a scalar YAML resolves but cannot build, e.g. the date 2025-13-01
        problem = bad_value(path, exc)
    raise error([problem])


def located(path: str, tree: Any, issues: Iterable[tuple[Loc, str, str]]) -> list[Problem]:
    """Problems from (loc, message, hint) found by checks after validation, each at its line in ``tree``."""
    return [Problem(file=path, line=line_of(tree, loc), field=field_name(loc), message=m, hint=h)
            for loc, m, h in issues]


def bad_scalar(path: str, exc: ValueError) -> Problem:
    """Like ``invalid_value``, with the line and field: compose the file again, without building values, and try
    each scalar until the failing one names its line and field."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    yaml = YAML(typ="rt")
    found: list[tuple[Loc, int]] = []

    def walk(node: Any, loc: Loc) -> None:
        if found:
            return
        if isinstance(node, MappingNode):
            for k, v in node.value:
                walk(v, (*loc, str(k.value)))
        elif isinstance(node, SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*loc, i))
        elif isinstance(node, ScalarNode):
            try:
                yaml.constructor.construct_object(node, deep=True)
            except ValueError:
                found.append((loc, node.start_mark.line + 1))

    try:
        with open(path, encoding="utf-8") as fh:
            walk(yaml.compose(fh), ())
    except Exception:  # noqa: BLE001 - the file was readable a moment ago; report without a line then
        found.clear()
    loc, line = found[0] if found else ((), None)
    hint = "a date is YYYY-MM-DD with a real month and day" if "must be in" in str(exc) or "day" in str(exc) else ""
    return Problem(file=path, line=line, field=field_name(loc) if loc else "(yaml)", message=f"bad value: {exc}",
                   hint=hint or "check the value on this line")


def validation_problems(exc: ValidationError, path: str, tree: Any, prefix: Loc = (),
                        hint: Callable[[ErrorDetails, Loc], str] | None = None, *, members: Collection[str] = (),
                        one_per_field: bool = False) -> list[Problem]:
    """pydantic's errors as Problems with line and field, in pydantic's order and without repeats.

    ``tree`` is the round-trip tree the validated data came from and ``prefix`` where in it that data sits (a
    rule validated on its own sits at ("rules", i)). ``hint(error, loc)`` gives an error's hint; ``members`` are
    union member names to drop from locs (see clean_loc). A value that fails every branch of a union gives one
    error per branch at one place; ``one_per_field`` keeps only the first of them.
    """
    out: list[Problem] = []
    seen: set[tuple[object, ...]] = set()
    for err in exc.errors():
        loc = (*prefix, *clean_loc(err["loc"], members))
        line = line_of(tree, loc)
        p = Problem(file=path, line=line, field=field_name(loc), message=err["msg"].removeprefix("Value error, "),
                    hint=hint(err, loc) if hint else "")
        key = (p.line, p.field) if one_per_field else (p.line, p.field, p.message, p.hint)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


__all__ = ["Loc", "Problem", "bad_scalar", "clean_loc", "field_name", "invalid_value", "line_of", "located", "plain",
           "read_tree", "validation_problems"]
