"""Binding: match every rule to every equipment (or point, or device) of a site that has what it needs.

A rule names the Brick classes of the points it needs; an equipment binds when it has a distinct point for
each variable (in point order, so three Phase_Voltage_Sensor variables take the three phases). A variable
marked ``anywhere`` may be found elsewhere in the building (the outdoor air sensor of the weather station).
Thresholds (params) are overridden per building, then per equipment, from the site file's ``overrides:``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from buildings.site import BuildingFile, Equipment, Point, Problem, Site, point_key
from rules.model import CompiledRule, PointSpec, Rule


def absent_point_key(building_id: str) -> str:
    """The engine's pseudo-point an optional variable reads where the building has no such point: always unknown."""
    return f"{building_id}/@absent"


def device_point_key(building_id: str, device_id: str) -> str:
    """The engine's pseudo-point for a device (its health); '@' keeps it apart from real point ids."""
    return f"{building_id}/@{device_id}"


@dataclass(slots=True)
class Binding:
    """One rule applied to one equipment (equipment scope), point (point scope) or device (device scope)."""

    rule: CompiledRule
    building: str
    equipment: str
    subject: str
    points: dict[str, str]
    params: dict[str, float]
    attrs: dict[str, float]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule.id, self.building, self.subject)


@dataclass
class BindReport:
    bindings: list[Binding] = field(default_factory=list)
    unbound: dict[str, str] = field(default_factory=dict)  # rule id -> why nothing matched
    problems: list[Problem] = field(default_factory=list)

    def by_rule(self) -> dict[str, list[Binding]]:
        out: dict[str, list[Binding]] = {}
        for b in self.bindings:
            out.setdefault(b.rule.id, []).append(b)
        return out


def _poll(bf: BuildingFile, p: Point) -> float:
    return p.poll_interval_s or bf.device_by_id[p.source.device].poll_interval_s


def _find(spec: PointSpec, eq: Equipment, bf: BuildingFile, used: set[str]) -> Point | None:
    for p in eq.points:
        if p.id not in used and spec.matches(p.brick, p.subitem):
            return p
    if spec.plant:
        for other in bf.equipment:
            if other.id in eq.feeds or eq.id in other.feeds:
                for p in other.points:
                    if p.id not in used and spec.matches(p.brick, p.subitem):
                        return p
    if spec.anywhere:
        for other in bf.equipment:
            for p in other.points:
                if p.id not in used and spec.matches(p.brick, p.subitem):
                    return p
    return None


def _params(rule: CompiledRule, bf: BuildingFile, eq: Equipment | None) -> dict[str, float]:
    """The rule's parameters with the building's, then the equipment's overrides (shared dict when none)."""
    b_ov = bf.building.overrides.get(rule.id)
    e_ov = eq.overrides.get(rule.id) if eq is not None else None
    if not b_ov and not e_ov:
        return rule.rule.params  # not copied: 100,000 bindings must not mean 100,000 dicts
    out = dict(rule.rule.params)
    out.update({k: v for k, v in (b_ov or {}).items() if k in out})
    out.update({k: v for k, v in (e_ov or {}).items() if k in out})
    return out


def check_overrides(site: Site, rules: list[CompiledRule]) -> list[Problem]:
    """Overrides naming an unknown rule or a parameter the rule does not have (a typo would be ignored)."""
    by_id = {r.id: r for r in rules}
    out: list[Problem] = []
    for i, bf in enumerate(site.files):
        path = site.paths[i] if i < len(site.paths) else bf.building.id
        places = [("building.overrides", bf.building.overrides)]
        places += [(f"equipment[{j}].overrides", eq.overrides) for j, eq in enumerate(bf.equipment)]
        for where, ov in places:
            for rid, params in ov.items():
                rule = by_id.get(rid)
                if rule is None:
                    out.append(Problem(file=path, line=None, field=f"{where}.{rid}",
                                       message=f"override for unknown rule {rid!r}",
                                       hint="`retrofit rules list` shows the rule ids"))
                    continue
                for k in params:
                    if k not in rule.rule.params:
                        out.append(Problem(file=path, line=None, field=f"{where}.{rid}.{k}",
                                           message=f"rule {rid} has no parameter {k!r}",
                                           hint=f"its parameters: {', '.join(rule.rule.params) or 'none'}"))
    return out


class _Shared:
    """Equal small dicts and key strings are stored once: a district binds hundreds of thousands of times."""

    def __init__(self) -> None:
        self.dicts: dict[tuple, dict] = {}

    def __call__(self, d: dict) -> dict:
        k = tuple(d.items())
        return self.dicts.setdefault(k, d)


def bind(site: Site, rules: list[CompiledRule], buildings: set[str] | None = None) -> BindReport:
    """Bind every rule to the site (optionally only some buildings); report rules that bind nothing."""
    rep = BindReport(problems=check_overrides(site, rules))
    files = [bf for bf in site.files if buildings is None or bf.building.id in buildings]
    shared = _Shared()
    for rule in rules:
        n0 = len(rep.bindings)
        why = _bind_rule(rule, files, rep, shared)
        if len(rep.bindings) == n0:
            rep.unbound[rule.id] = why
    return rep


def _key(building_id: str, local_id: str) -> str:
    return sys.intern(point_key(building_id, local_id))


def _context(r: Rule, bf: BuildingFile, eq: Equipment, p: Point) -> dict[str, str]:
    """A point-scope binding: x, and each optional context variable found in the equipment or its plant."""
    out = {"x": _key(bf.building.id, p.id)}
    for var, spec in r.points.items():
        if var != "x":
            found = _find(spec, eq, bf, {p.id})
            out[var] = _key(bf.building.id, found.id) if found else sys.intern(absent_point_key(bf.building.id))
    return out


def _bind_rule(rule: CompiledRule, files: list[BuildingFile], rep: BindReport, shared: _Shared) -> str:
    """Bind one rule on every building; returns why it bound nowhere (used only when it did not bind)."""
    r = rule.rule
    kinds = set(r.equipment)
    missing_attr = 0
    for bf in files:
        if r.scope == "device":
            _bind_devices(rule, bf, rep, shared)
            continue
        for eq in bf.equipment:
            if kinds and eq.kind not in kinds:
                continue
            bind = _bind_points if r.scope == "point" else _bind_equipment
            missing_attr += bind(rule, bf, eq, rep, shared)
    if missing_attr:
        return f"{missing_attr} candidate(s) lack {', '.join(sorted(rule.attrs_used))} in the site file"
    need = "; ".join(f"{v}: {'/'.join(s.classes or s.quantity)}" for v, s in r.points.items())
    where = f" on {'/'.join(sorted(kinds))}" if kinds else ""
    return f"no equipment{where} has {need}"


def _bind_devices(rule: CompiledRule, bf: BuildingFile, rep: BindReport, shared: _Shared) -> None:
    """A device-scope rule: one binding per device, on its health point."""
    b = bf.building
    for d in bf.devices:
        rep.bindings.append(Binding(rule, b.id, "", d.id, shared({"dev": sys.intern(device_point_key(b.id, d.id))}),
                                    _params(rule, bf, None), shared({"poll_s": d.poll_interval_s})))


def _bind_points(rule: CompiledRule, bf: BuildingFile, eq: Equipment, rep: BindReport, shared: _Shared) -> int:
    """A point-scope rule: one binding per matching point; returns how many lacked a needed attribute."""
    b, spec, missing = bf.building, rule.rule.points["x"], 0
    for p in eq.points:
        if not spec.matches(p.brick, p.subitem):
            continue
        attrs = {"poll_s": _poll(bf, p)}
        if p.range is not None:
            attrs["range_min"], attrs["range_max"] = p.range
        if not rule.attrs_used <= set(attrs):
            missing += 1
            continue
        rep.bindings.append(Binding(rule, b.id, eq.id, p.id, shared(_context(rule.rule, bf, eq, p)),
                                    _params(rule, bf, eq), shared(attrs)))
    return missing


def _bind_equipment(rule: CompiledRule, bf: BuildingFile, eq: Equipment, rep: BindReport, shared: _Shared) -> int:
    """An equipment-scope rule: one binding when every variable finds its own point; 1 if an attribute is missing."""
    b, used, found, polls = bf.building, set(), {}, []
    for var, spec in rule.rule.points.items():
        p = _find(spec, eq, bf, used)
        if p is None:
            return 0
        used.add(p.id)
        found[var] = _key(b.id, p.id)
        polls.append(_poll(bf, p))
    attrs = {"poll_s": max(polls), "floor_area_m2": b.gross_floor_area_m2}
    if eq.breaker_rating_a is not None:
        attrs["breaker_rating_a"] = eq.breaker_rating_a
    if not rule.attrs_used <= set(attrs):
        return 1
    rep.bindings.append(Binding(rule, b.id, eq.id, eq.id, shared(found), _params(rule, bf, eq), shared(attrs)))
    return 0
