"""The building model in standard terms: Haystack-style tags from Brick classes, and a Brick model in Turtle.

Tags are derived, not typed twice: a point's Brick class (``Zone_Air_Temperature_Sensor``) already names its
quantity, medium and role, so ``haystack_tags`` maps its words to Project Haystack marker tags (``zone air temp
sensor point``) plus ``unit`` and the equipment marker. The Turtle is written here (a few dozen lines; rdflib is
only used by the tests to check that it parses) with Brick 1.3 relations: ``brick:hasPart`` building ->
equipment is avoided for non-spatial equipment, so equipment is ``brick:hasLocation`` the building and points are
``brick:isPointOf`` their equipment, with QUDT units.
"""

from __future__ import annotations

from typing import Any

from buildings.site import BuildingFile, Equipment, Point

WORD_TAGS: dict[str, tuple[str, ...]] = {
    "Temperature": ("temp",), "Humidity": ("humidity",), "Relative": (), "Pressure": ("pressure",),
    "Static": (), "Air": ("air",), "Zone": ("zone",), "Supply": ("discharge",), "Return": ("return",),
    "Outside": ("outside",), "Mixed": ("mixed",), "Fan": ("fan",), "Damper": ("damper",), "Valve": ("valve",),
    "Heating": ("heating",), "Cooling": ("cooling",), "Chilled": ("chilled",), "Condenser": ("condenser",),
    "Water": ("water",), "Electric": ("elec",), "Energy": ("energy",), "Power": ("power",), "Phase": (),
    "Voltage": ("volt",), "Current": ("current",), "Frequency": ("freq",), "Factor": ("pf",), "Peak": ("peak",),
    "Demand": ("demand",), "Gas": ("naturalGas",), "Usage": ("volume",), "Flow": ("flow",), "CO2": ("co2",),
    "CO": ("co",), "Combustible": ("gas", "combustible"), "Smoke": ("smoke",), "Leak": ("leak",),
    "Occupancy": ("occupied",), "Lighting": ("light",), "Elevator": ("elevator",), "Pump": ("pump",),
    "Chiller": ("chiller",), "Speed": ("speed",), "Position": ("position",), "Battery": ("battery",),
    "Level": ("level",), "Signal": ("signal",), "Strength": ("strength",), "Transformer": ("transformer",),
    "Load": ("load",), "Status": ("run",), "Detection": ("alarm",),
}
ROLE_TAGS = {"Sensor": "sensor", "Setpoint": "sp", "Command": "cmd", "Status": "sensor"}
EQUIP_TAGS: dict[str, tuple[str, ...]] = {
    "ahu": ("ahu",), "rtu": ("ahu", "rtu"), "vav": ("vav",), "fcu": ("fcu",), "chiller": ("chiller",),
    "pump": ("pump",), "fan": ("fan",), "cooling_tower": ("coolingTower",), "lighting": ("lighting",),
    "lift": ("elevator",), "meter": ("elec", "meter"), "water_meter": ("water", "meter"),
    "gas_meter": ("naturalGas", "meter"), "switch_room": ("elec", "panel"), "transformer": ("elec", "transformer"),
    "garage": ("parking",), "zone": ("zone",), "weather": ("weatherStation",), "sensor_node": ("device",),
    "kitchen": ("space", "kitchen"),
}
# QUDT unit ids for the site-file units (http://qudt.org/vocab/unit/)
QUDT: dict[str, str] = {
    "degC": "DEG_C", "K": "K", "%RH": "PERCENT_RH", "%": "PERCENT", "ppm": "PPM", "%LEL": "PERCENT", "Pa": "PA",
    "kPa": "KiloPA", "kW": "KiloW", "kVA": "KiloV-A", "kvar": "KiloV-A_Reactive", "kWh": "KiloW-HR", "V": "V",
    "A": "A", "Hz": "HZ", "PF": "UNITLESS", "m3": "M3", "m3/h": "M3-PER-HR", "L/s": "L-PER-SEC", "lux": "LUX",
    "dBm": "DeciB_M", "COP": "UNITLESS", "count": "NUM", "h": "HR",
}


def _words(brick: str) -> list[str]:
    return [w for w in brick.split("_") if w]


def haystack_tags(point: Point, equipment: Equipment | None = None) -> list[str]:
    """Haystack marker tags of a point (sorted), derived from its Brick class, unit and flags."""
    words = _words(point.brick)
    tags = {"point", "his"}
    for w in words:
        tags.update(WORD_TAGS.get(w, (w[:1].lower() + w[1:],) if w not in ROLE_TAGS else ()))
    role = next((ROLE_TAGS[w] for w in reversed(words) if w in ROLE_TAGS), "sensor")
    tags.add(role)
    if point.writable:
        tags.add("writable")
    if point.counter:
        tags.add("totalized")
    if point.subitem:
        tags.add(f"subitem:{point.subitem}")
    if point.unit:
        tags.add(f"unit:{point.unit}")
    return sorted(tags)


def equipment_tags(eq: Equipment) -> list[str]:
    return sorted({"equip", *EQUIP_TAGS.get(eq.kind, (eq.kind,))})


def building_tags(bf: BuildingFile) -> list[str]:
    return sorted({"site", "building", bf.building.use.value})


# --- Turtle ----------------------------------------------------------------------------------------------------
PREFIXES = """@prefix brick: <https://brickschema.org/schema/Brick#> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix unit: <http://qudt.org/vocab/unit/> .
@prefix ref: <https://brickschema.org/schema/Brick/ref#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""


def _lit(text: str, lang: str | None = None) -> str:
    esc = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{esc}"' + (f"@{lang}" if lang else "")


def _iri(base: str, *parts: str) -> str:
    from urllib.parse import quote

    return "<" + base + "/".join(quote(p, safe="-_.~") for p in parts) + ">"


def brick_turtle(bf: BuildingFile, base: str = "urn:retrofit:") -> str:
    """The Brick model of one building as Turtle: building, equipment (with feeds), points with units."""
    b = bf.building
    bid = _iri(base, b.id)
    out = [PREFIXES, f"{bid} a brick:Building ;", f"    rdfs:label {_lit(b.name.zh, 'zh')}, {_lit(b.name.en, 'en')} ;",
           f"    brick:area [ brick:value \"{b.gross_floor_area_m2}\"^^xsd:double ; brick:hasUnit unit:M2 ] .", ""]
    for eq in bf.equipment:
        eid = _iri(base, b.id, eq.id)
        lines = [f"{eid} a brick:{eq.brick_class} ;", f"    rdfs:label {_lit(eq.name, 'en')}"
                 + (f", {_lit(eq.name_zh, 'zh')}" if eq.name_zh else "") + " ;",
                 f"    brick:hasLocation {bid}"]
        for target in eq.feeds:
            lines[-1] += " ;"
            lines.append(f"    brick:feeds {_iri(base, b.id, target)}")
        out.append("\n".join(lines) + " .")
        for p in eq.points:
            pid = _iri(base, b.id, p.id)
            pl = [f"{pid} a brick:{p.brick} ;", f"    rdfs:label {_lit(p.name, 'en')}"
                  + (f", {_lit(p.name_zh, 'zh')}" if p.name_zh else "") + " ;",
                  f"    brick:isPointOf {eid} ;",
                  f"    ref:hasExternalReference [ ref:hasTimeseriesId {_lit(f'{b.id}/{p.id}')} ]"]
            if p.unit in QUDT:
                pl[-1] += " ;"
                pl.append(f"    brick:hasUnit unit:{QUDT[p.unit]}")
            out.append("\n".join(pl) + " .")
        out.append("")
    return "\n".join(out) + "\n"


def point_view(bf: BuildingFile, eq: Equipment, p: Point) -> dict[str, Any]:
    return {"key": f"{bf.building.id}/{p.id}", "id": p.id, "equipment": eq.id, "name": p.name, "name_zh": p.name_zh,
            "brick": f"brick:{p.brick}", "unit": p.unit, "range": list(p.range) if p.range else None,
            "writable": p.writable, "counter": p.counter, "subitem": p.subitem, "tags": haystack_tags(p, eq)}


def equipment_view(bf: BuildingFile, eq: Equipment, with_points: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": eq.id, "building": bf.building.id, "name": eq.name, "name_zh": eq.name_zh,
                           "kind": eq.kind, "brick": f"brick:{eq.brick_class}", "tags": equipment_tags(eq),
                           "feeds": list(eq.feeds), "location": eq.location}
    if with_points:
        out["points"] = [point_view(bf, eq, p) for p in eq.points]
    return out
