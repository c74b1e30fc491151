"""Rules as data: the YAML rule file format, validated by pydantic, compiled into expression closures.

A rule file holds ``rules:``, a list of rules. Loading is all-or-nothing per library: every problem in every
file is collected and raised as one RuleError whose problems name the file, the line and the field, like a
site file's. See docs/rules.md for the format and the condition language.
"""

from __future__ import annotations

import ast
import os
import re
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from buildings.brick import BRICK_CLASSES, EQUIPMENT_BRICK, UNITS
from buildings.site import Problem
from buildings.strict import Strict
from buildings.yamlfile import Loc, field_name, line_of, plain, read_tree, suggest, validation_problems, yaml_files
from rules.expr import Compiled, ExprError, Fn, compile_expr, parse, parse_duration, truth

LIBRARY_DIR = os.path.join(os.path.dirname(__file__), "library")
QUANTITIES = sorted(set(UNITS.values()))

# Names a rule can read besides its points, params and lets: where each one comes from is in binding.py.
POINT_ATTRS = {"range_min", "range_max", "poll_s"}
EQUIPMENT_ATTRS = {"breaker_rating_a", "floor_area_m2", "poll_s"}
DEVICE_ATTRS = {"poll_s"}
BUILTINS = {"occupied"}


class Family(StrEnum):
    SENSOR_HEALTH = "sensor_health"
    ENERGY = "energy"
    SAFETY = "safety"


class Severity(StrEnum):
    """open-fdd's taxonomy: advisory < warning (review in 24 h) < fault (work order) < critical (now)."""

    ADVISORY = "advisory"
    WARNING = "warning"
    FAULT = "fault"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.ADVISORY: 1, Severity.WARNING: 2, Severity.FAULT: 3, Severity.CRITICAL: 4}


class Names(Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class PointSpec(Strict):
    """Which points a rule variable binds to: by Brick class, or (point scope) by measured quantity."""

    classes: list[str] = Field(default_factory=list, alias="class")
    quantity: list[str] = Field(default_factory=list)
    anywhere: bool = Field(default=False, description="look in the whole building, not only the equipment")
    plant: bool = Field(default=False, description="also look in the equipment linked to it by feeds: (its "
                                                   "plant: the pump of a chiller, the AHU of a zone)")
    optional: bool = Field(default=False, description="a context point (point scope): reads as unknown where "
                                                      "the equipment and its plant have none")
    subitem: list[Literal["lighting_sockets", "hvac", "power", "special", "total"]] = Field(
        default_factory=list, description="only meter points of these sub-item categories (分项)")

    @field_validator("classes", "quantity", "subitem", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in BRICK_CLASSES:
                raise ValueError(f"unknown Brick point class {c!r}{suggest(c, BRICK_CLASSES)}: no equipment can "
                                 "have it (the vocabulary is buildings/brick.py)")
        return v

    @field_validator("quantity")
    @classmethod
    def _known_quantities(cls, v: list[str]) -> list[str]:
        for q in v:
            if q not in QUANTITIES:
                raise ValueError(f"unknown quantity {q!r}{suggest(q, QUANTITIES)}; known: {', '.join(QUANTITIES)}")
        return v

    @model_validator(mode="after")
    def _something(self) -> PointSpec:
        if not self.classes and not self.quantity:
            raise ValueError("give class: (Brick classes) or quantity: (e.g. temperature)")
        return self

    def matches(self, brick: str, subitem: str | None = None) -> bool:
        if self.classes and brick not in self.classes:
            return False
        if self.subitem and subitem not in self.subitem:
            return False
        return not self.quantity or BRICK_CLASSES.get(brick) in self.quantity


Duration = Annotated[float, Field(ge=0)]
RULE_ID = r"^[a-z0-9][a-z0-9_.\-]*$"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Rule(Strict):
    """One rule, as written in a library file."""

    id: str = Field(pattern=RULE_ID, max_length=64)
    name: Names
    family: Family
    scope: Literal["equipment", "point", "device"] = "equipment"
    equipment: list[str] = Field(default_factory=list, description="equipment kinds; empty = any")
    points: dict[str, PointSpec] = Field(default_factory=dict)
    params: dict[str, float] = Field(default_factory=dict)
    let: dict[str, str] = Field(default_factory=dict, description="named values, in order")
    when: str = Field(min_length=1)
    clear_when: str | None = None
    hold: Duration = Field(default=0.0, alias="for", description="how long `when` must hold to raise")
    clear_for: Duration = Field(default=0.0, description="how long `clear_when` must hold to clear")
    schedule: Literal["occupied", "unoccupied", "always"] = "always"
    severity: Severity
    message: Names
    source: str = Field(min_length=3, description="G36 FC#n, APAR n, GB/T 18883, NEMA ...")

    @field_validator("points", mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"class": s} if isinstance(s, str | list) else s) for k, s in v.items()}
        return v

    @field_validator("hold", "clear_for", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("equipment")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        for k in v:
            if k not in EQUIPMENT_BRICK:
                raise ValueError(f"unknown equipment kind {k!r}{suggest(k, EQUIPMENT_BRICK)}")
        return v

    @model_validator(mode="after")
    def _scope_shape(self) -> Rule:
        if self.scope == "point" and (list(self.points)[:1] != ["x"]
                                      or not all(s.optional for v, s in self.points.items() if v != "x")):
            raise ValueError("a point-scope rule has one point variable, named x (first), plus optional context "
                             "points (optional: true), e.g. the equipment's run status")
        if self.scope == "device" and self.points:
            raise ValueError("a device-scope rule has no points: it reads the device as `dev`")
        if self.scope == "equipment" and not self.points:
            raise ValueError("an equipment rule needs points:")
        for var in [*self.points, *self.params, *self.let]:
            if not _FIELD.match(var) or var in BUILTINS:
                raise ValueError(f"{var!r} cannot be a variable name")
        clash = (set(self.points) & set(self.params)) | (set(self.let) & (set(self.points) | set(self.params)))
        if clash:
            raise ValueError(f"name(s) used twice: {', '.join(sorted(clash))}")
        return self

    @property
    def attrs(self) -> set[str]:
        return {"point": POINT_ATTRS, "equipment": EQUIPMENT_ATTRS, "device": DEVICE_ATTRS}[self.scope]

    @property
    def point_vars(self) -> list[str]:
        return ["dev"] if self.scope == "device" else list(self.points)


@dataclass
class CompiledRule:
    """A rule ready for the engine: closures for its lets, condition and clear condition."""

    rule: Rule
    file: str
    line: int | None
    lets: list[tuple[str, Fn]]
    when: Fn
    clear: Fn | None
    slot_factories: list[Any]
    names: set[str]
    message_fields: set[str] = field(default_factory=set)
    let_deps: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # name -> (tree dump, names)
    window_s: float = 0.0  # longest rolling window the rule reads (detection takes up to window + for)
    clear_stateful: bool = False  # the clear condition keeps window state (so it must run every tick)
    point_args: set[str] = field(default_factory=set)  # point variables read by age/prev/raw/flagged

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def attrs_used(self) -> set[str]:
        return self.names & self.rule.attrs


class RuleError(ValueError):
    """A rule library that cannot be loaded; carries every problem found (file, line, field, message)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _expr_line(node: Any, loc: tuple[str | int, ...], key: str) -> int | None:
    """The 1-based file line of the first line of an expression field."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    line = line_of(node, (*loc, key))
    try:
        value = node
        for part in loc:
            value = value[part]
        if isinstance(value[key], LiteralScalarString) and line is not None:
            return line + 1
    except (KeyError, IndexError, TypeError):
        pass
    return line


def message_fields(template: str) -> set[str]:
    """The {names} a message template uses; only plain names (no attributes or indexing) are allowed."""
    out = set()
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not _FIELD.match(name):
            raise ValueError(f"message field {{{name}}} must be a plain name (no dots, brackets or positions)")
        if conv is not None or (spec and "{" in spec):
            raise ValueError(f"message field {{{name}}}: no conversions or nested fields")
        out.add(name)
    return out


def compile_rule(rule: Rule, file: str, tree: Any, loc: tuple[str | int, ...]) -> CompiledRule:
    """Compile a validated rule; raise RuleError with file and line for a condition that does not compile."""
    known = set(rule.point_vars) | set(rule.params) | rule.attrs | BUILTINS
    points = set(rule.point_vars)
    slots: list[Any] = []
    names: set[str] = set()
    point_args: set[str] = set()
    windows: list[float] = [0.0]
    problems: list[Problem] = []

    def comp(text: str, key: str, field_loc: tuple[str | int, ...]) -> Compiled | None:
        try:
            c = compile_expr(text, known, points, slot_base=len(slots))
        except ExprError as exc:
            base = _expr_line(tree, loc, key) if key in ("when", "clear_when") else line_of(tree, (*loc, *field_loc))
            line = (base + exc.line - 1) if base is not None else None
            problems.append(Problem(file=file, line=line, field=field_name((*loc, *field_loc)),
                                    message=f"rule {rule.id}: {exc.reason} (column {exc.col})",
                                    hint="see docs/rules.md for the condition language"))
            return None
        slots.extend(c.slot_factories)
        names.update(c.names)
        windows.append(c.max_window_s)
        point_args.update(c.point_args)
        return c

    lets: list[tuple[str, Fn]] = []
    let_deps: dict[str, tuple[str, frozenset[str]]] = {}
    for name, text in rule.let.items():
        c = comp(text, "let", ("let", name))
        if c is not None:
            lets.append((name, c.fn))
            let_deps[name] = (ast.dump(parse(text)), frozenset(c.names))
        known.add(name)
    w = comp(rule.when, "when", ("when",))
    cl = comp(rule.clear_when, "clear_when", ("clear_when",)) if rule.clear_when else None
    mfields: set[str] = set()
    for lang in ("zh", "en"):
        try:
            fs = message_fields(getattr(rule.message, lang))
        except ValueError as exc:
            problems.append(Problem(file=file, line=line_of(tree, (*loc, "message", lang)),
                                    field=field_name((*loc, "message", lang)), message=f"rule {rule.id}: {exc}"))
            continue
        unknown = fs - known - {"building", "equipment", "subject", "point"}
        if unknown:
            problems.append(Problem(file=file, line=line_of(tree, (*loc, "message", lang)),
                                    field=field_name((*loc, "message", lang)),
                                    message=f"rule {rule.id}: unknown message field(s) {', '.join(sorted(unknown))}",
                                    hint="use a point, let or param name of this rule"))
        mfields |= fs
    if problems:
        raise RuleError(problems)
    assert w is not None
    return CompiledRule(rule=rule, file=file, line=line_of(tree, loc), lets=lets, when=_as_truth(w),
                        clear=_as_truth(cl) if cl else None, slot_factories=slots, names=names, message_fields=mfields,
                        let_deps=let_deps, window_s=max(windows),
                        clear_stateful=bool(cl and cl.slot_factories),
                        point_args=point_args)


def _key_hint(err: Any, loc: Loc) -> str:
    return "remove or rename the key" if err["type"] == "extra_forbidden" else ""


def _as_truth(c: Compiled) -> Fn:
    if c.kind == "bool":
        return c.fn
    fn = c.fn
    return lambda f: truth(fn(f))


def load_rules(path: str = LIBRARY_DIR) -> list[CompiledRule]:
    """Load, validate and compile every rule in a file or folder; RuleError lists every problem found."""
    files = yaml_files(path)
    if not files:
        raise RuleError([Problem(file=path, line=None, field="(folder)", message="no .yaml rule files here")])
    problems: list[Problem] = []
    out: list[CompiledRule] = []
    seen: dict[str, str] = {}
    for f in files:
        try:
            tree = read_tree(f, RuleError)
        except RuleError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(tree, dict) or not isinstance(tree.get("rules"), list):
            problems.append(Problem(file=f, line=1, field="rules", message="expected a mapping with rules: [..]"))
            continue
        for i, node in enumerate(tree["rules"]):
            loc: tuple[str | int, ...] = ("rules", i)
            try:
                rule = Rule.model_validate(plain(node))
            except ValidationError as exc:
                rid = node.get("id", f"#{i + 1}") if isinstance(node, dict) else f"#{i + 1}"
                problems += [p.model_copy(update={"message": f"rule {rid}: {p.message}"})
                             for p in validation_problems(exc, f, tree, loc, _key_hint)]
                continue
            if rule.id in seen:
                problems.append(Problem(file=f, line=line_of(tree, (*loc, "id")), field=field_name((*loc, "id")),
                                        message=f"rule id {rule.id!r} is also defined in {seen[rule.id]}"))
                continue
            seen[rule.id] = f
            try:
                out.append(compile_rule(rule, f, tree, loc))
            except RuleError as exc:
                problems.extend(exc.problems)
    if problems:
        raise RuleError(problems)
    return out
