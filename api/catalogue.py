"""The resource catalogue: every dataset the district can share, what it is, its fields and units, how often it
changes, who keeps it, how sensitive it is and who may read it (the shared resource directory, 资源目录).

Datasets are declared once here; the API serves them at ``/api/v1/catalogue`` and ``retrofit catalogue export``
writes them as JSON or CSV. Telemetry units come from the site files (every unit in use, with its quantity).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel

from buildings.brick import UNITS
from buildings.site import Site


class Field_(BaseModel):
    name: str
    type: str
    unit: str | None = None
    description: str
    personal: bool = False


class Dataset(BaseModel):
    id: str
    title_zh: str
    title_en: str
    description: str
    endpoint: str
    formats: list[str]
    update_interval: str
    owner: str
    sensitivity: str  # public | internal | restricted | personal
    readers: list[str]
    fields: list[Field_]


DISTRICT = "Yuzhong District Commerce Commission (渝中区商务委员会)"
ALL = ["district", "owner (own buildings)", "technician (read-only)"]


def _f(name: str, type_: str, description: str, unit: str | None = None, personal: bool = False) -> Field_:
    return Field_(name=name, type=type_, unit=unit, description=description, personal=personal)


def _portfolio() -> list[Dataset]:
    """Buildings, owners and the Brick model: what the site files and the records hold."""
    return [
        Dataset(id="buildings", title_zh="楼宇基本信息", title_en="Buildings",
                description="The district's old commercial buildings: identity, address, use, age, floor area, "
                            "platform code, ownership concentration.",
                endpoint="/api/v1/buildings", formats=["json"], update_interval="on change (site files)",
                owner=DISTRICT, sensitivity="internal", readers=ALL,
                fields=[_f("id", "string", "building id"), _f("code", "string", "platform building code"),
                        _f("name_zh", "string", "name in Chinese"), _f("name_en", "string", "name in English"),
                        _f("address", "string", "street address"), _f("use", "string", "building use"),
                        _f("year_built", "integer", "year of construction"),
                        _f("gross_floor_area_m2", "number", "gross floor area", "m2"),
                        _f("floors_above", "integer", "floors above ground"),
                        _f("lat", "number", "latitude (WGS84)", "deg"), _f("lon", "number", "longitude", "deg")]),
        Dataset(id="owners", title_zh="产权人及份额", title_en="Owners and shares",
                description="Owner rows of each building with exclusive area and share; contact persons of "
                            "individual owners. Personal fields are masked for every reader without the pii right.",
                endpoint="/api/v1/buildings/{id}/owners", formats=["json"], update_interval="on change",
                owner=DISTRICT, sensitivity="personal",
                readers=["district (pii right: unmasked)", "owner (own buildings, masked)"],
                fields=[_f("owner_id", "string", "owner id"), _f("kind", "string", "individual, enterprise, ..."),
                        _f("name", "string", "owner name (individuals: personal)", personal=True),
                        _f("area_m2", "number", "exclusive area", "m2"), _f("share", "number", "share of area"),
                        _f("count", "integer", "owners this row stands for"),
                        _f("contact_name", "string", "contact person", personal=True),
                        _f("id_number", "string", "resident ID number", personal=True),
                        _f("phone", "string", "phone number", personal=True)]),
        Dataset(id="brick-model", title_zh="楼宇设备点位模型 (Brick)", title_en="Equipment and points (Brick model)",
                description="Equipment and points with Brick classes, Haystack-style tags and units; also as "
                            "Brick Turtle per building.",
                endpoint="/api/v1/buildings/{id}/equipment, /api/v1/buildings/{id}/brick.ttl",
                formats=["json", "text/turtle"], update_interval="on change (site files)", owner=DISTRICT,
                sensitivity="internal", readers=ALL,
                fields=[_f("key", "string", "point key building/point"), _f("brick", "string", "Brick class"),
                        _f("tags", "string[]", "Haystack marker tags"), _f("unit", "string", "unit of the values"),
                        _f("equipment", "string", "equipment id")]),
    ]


def _telemetry(unit_note: str) -> list[Dataset]:
    """Readings, aggregates, energy exports and alarms; ``unit_note`` lists the units in use."""
    return [
        Dataset(id="latest-values", title_zh="实时数据", title_en="Latest values",
                description="The last reading of every point with its quality.",
                endpoint="/api/v1/buildings/{id}/latest", formats=["json"],
                update_interval="each poll (5 s - 15 min per device)", owner="building owner", sensitivity="internal",
                readers=ALL,
                fields=[_f("point", "string", "point key"), _f("ts", "number", "UTC epoch seconds", "s"),
                        _f("value", "number|string", f"value in the point's unit: {unit_note}"),
                        _f("quality", "string", "good, stale, comm-failure, out-of-range, bad-config, bad")]),
        Dataset(id="history", title_zh="历史数据（聚合）", title_en="History (aggregated)",
                description="Store-side aggregates of one point per window (mean, min, max, sum, last, count, delta).",
                endpoint="/api/v1/buildings/{id}/points/{point}/history", formats=["json"],
                update_interval="continuous", owner="building owner", sensitivity="internal", readers=ALL,
                fields=[_f("t", "number", "window start, UTC epoch seconds", "s"),
                        _f("v", "number", "aggregate in the point's unit")]),
        Dataset(id="subitem-energy", title_zh="分项能耗", title_en="Sub-item energy",
                description="Electricity by sub-item (lighting and sockets, HVAC, power, special), water and gas per "
                            "building at 15-minute and hourly resolution, for the municipal monitoring platform.",
                endpoint="/api/v1/buildings/{id}/energy", formats=["csv", "json"],
                update_interval="15 min / 1 h (scheduled export)", owner="building owner", sensitivity="internal",
                readers=["district", "owner (own buildings)"],
                fields=[_f("building_code", "string", "platform building code"),
                        _f("energy_type", "string", "electricity, water, gas"),
                        _f("subitem", "string", "total, lighting_sockets, hvac, power, special"),
                        _f("item_code", "string", "guideline item code (01A00 ...)"),
                        _f("period_start", "string", "ISO 8601 local time with offset"),
                        _f("period_end", "string", "ISO 8601 local time with offset"),
                        _f("value", "number", "energy or volume in the window", "kWh | m3"),
                        _f("unit", "string", "kWh or m3")]),
        Dataset(id="alarms", title_zh="告警", title_en="Alarms",
                description="Faults and safety alarms found by the rules, with their lifecycle.",
                endpoint="/api/v1/alarms", formats=["json"], update_interval="event-driven", owner="building owner",
                sensitivity="internal", readers=ALL,
                fields=[_f("id", "integer", "alarm id"), _f("rule", "string", "rule id"),
                        _f("building", "string", "building id"), _f("severity", "string", "info .. critical"),
                        _f("state", "string", "raised, acknowledged, cleared"),
                        _f("raised_at", "number", "UTC epoch seconds", "s"),
                        _f("points", "string[]", "a grouped alarm's points (subject '*'); empty for one point"),
                        _f("flood", "boolean", "raised beyond a flood-control rate limit"),
                        _f("message_zh", "string", "message in Chinese"), _f("message_en", "string", "in English")]),
    ]


def _programme() -> list[Dataset]:
    """The retrofit programme: projects, subsidies, measured savings and signed evidence."""
    return [
        Dataset(id="retrofit-projects", title_zh="改造项目", title_en="Retrofit projects",
                description="Projects with stage, progress, budget, measures, milestones and document digests.",
                endpoint="/api/v1/projects", formats=["json"], update_interval="on change", owner=DISTRICT,
                sensitivity="internal", readers=["district", "owner (own buildings)"],
                fields=[_f("project_id", "string", "project id"), _f("stage", "string", "current stage"),
                        _f("progress", "number", "share of milestones done"), _f("budget", "number", "capex", "CNY"),
                        _f("documents", "object[]", "type, title, SHA-256")]),
        Dataset(id="subsidies", title_zh="补贴申请与资格", title_en="Subsidy applications and eligibility",
                description="Applications with status, assessed and paid amounts; eligibility per policy.",
                endpoint="/api/v1/subsidies, /api/v1/buildings/{id}/subsidies", formats=["json"],
                update_interval="on change", owner=DISTRICT, sensitivity="restricted",
                readers=["district", "owner (own buildings)"],
                fields=[_f("application_id", "string", "application id"), _f("policy_id", "string", "policy"),
                        _f("status", "string", "draft .. paid"), _f("assessed_amount", "number", "amount", "CNY"),
                        _f("paid", "number", "paid so far", "CNY")]),
        Dataset(id="measured-savings", title_zh="实测节能量", title_en="Measured savings",
                description="IPMVP option C savings of a retrofitted building: change-point baseline on outdoor "
                            "temperature checked against ASHRAE Guideline 14, avoided energy and its uncertainty; "
                            "the same figure the subsidy's savings condition is judged on.",
                endpoint="/api/v1/buildings/{id}/savings", formats=["json"], update_interval="daily",
                owner="building owner", sensitivity="restricted", readers=["district", "owner (own buildings)"],
                fields=[_f("avoided_kwh", "number", "predicted minus metered energy", "kWh"),
                        _f("savings_pct", "number", "avoided over predicted", "%"),
                        _f("baseline", "object", "model, period, CV(RMSE), NMBE, Guideline 14 verdict"),
                        _f("reporting_period", "string[]", "first and last day"),
                        _f("evidence", "object", "meter, outdoor temperature point and whose it is")]),
        Dataset(id="evidence", title_zh="电子证据", title_en="Signed evidence",
                description="Signatures of approved documents and applications; the hash-chained audit log. "
                            "Checked with `retrofit evidence verify`.",
                endpoint="(records database; retrofit evidence verify)", formats=["cli"], update_interval="on change",
                owner=DISTRICT, sensitivity="restricted", readers=["district"],
                fields=[_f("subject", "string", "document, subsidy_application, audit_checkpoint"),
                        _f("signer", "string", "approving user"), _f("signature", "string", "Ed25519, base64")]),
    ]


def datasets(site: Site | None = None) -> list[Dataset]:
    """Every shareable dataset; telemetry fields list the units the site really uses."""
    units = sorted({p.unit for f in site.files for _, p in f.points()}) if site else sorted(UNITS)
    unit_note = ", ".join(f"{u or '(none)'} ({UNITS.get(u, '?')})" for u in units)
    return [*_portfolio(), *_telemetry(unit_note), *_programme()]


def as_dicts(site: Site | None = None) -> list[dict[str, Any]]:
    return [d.model_dump() for d in datasets(site)]


def to_csv(site: Site | None = None) -> str:
    """One row per dataset field (dataset columns repeated), for a spreadsheet directory."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "title_zh", "title_en", "endpoint", "update_interval", "owner", "sensitivity", "readers",
                "field", "type", "unit", "personal", "description"])
    for d in datasets(site):
        for f in d.fields:
            w.writerow([d.id, d.title_zh, d.title_en, d.endpoint, d.update_interval, d.owner, d.sensitivity,
                        "; ".join(d.readers), f.name, f.type, f.unit or "", "yes" if f.personal else "",
                        f.description])
    return buf.getvalue()
