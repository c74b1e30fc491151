"""The API against the sample district on a real uvicorn: each endpoint returns what the stores hold, tokens are
scoped like dashboard users, refusals are 401/404/403/429 as documented, every request is in the audit chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from api.model import haystack_tags
from buildings.records.base import session_factory
from buildings.site import load_site
from telemetry.queries import energy_by_subitem
from telemetry.store import Agg
from tests.api.conftest import PERSONAL, Served

B = "jiefangbei-tower"


def ids(resp) -> list[str]:
    return [x["id"] for x in resp.json()["items"]]


def test_each_token_sees_exactly_its_buildings(served: Served) -> None:
    site = load_site(str(served.env.site_path))
    assert sorted(ids(served.get("/api/v1/buildings"))) == sorted(b.id for b in site.buildings)
    assert ids(served.get("/api/v1/buildings", "yuxin")) == ["jiefangbei-tower"]
    assert ids(served.get("/api/v1/buildings", "harbour")) == ["chaotianmen-harbour"]
    assert ids(served.get("/api/v1/buildings", "f03")) == ["huaxin-building"]
    assert sorted(ids(served.get("/api/v1/buildings", "tech"))) == sorted(b.id for b in site.buildings)
    first = served.get("/api/v1/buildings", limit=2, offset=0).json()
    second = served.get("/api/v1/buildings", limit=2, offset=2).json()
    assert first["total"] == 4 and first["next_offset"] == 2 and second["next_offset"] is None
    assert len({x["id"] for x in first["items"] + second["items"]}) == 4


@pytest.mark.parametrize("token", [None, "revoked", "expired", "rft_0123456789_" + "A" * 43, "garbage"])
def test_unauthenticated_is_401(served: Served, token: str | None) -> None:
    r = served.get("/api/v1/buildings", token)
    assert r.status_code == 401
    assert r.json() == {"detail": "missing, invalid, revoked or expired token"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoking_takes_effect_on_next_request(served: Served) -> None:
    from api.tokens import create_token, revoke_token

    rec, text = create_token(served.engine, "short-lived", "district", days=1)
    assert served.get("/api/v1/buildings", text).status_code == 200
    revoke_token(served.engine, rec.id)
    assert served.get("/api/v1/buildings", text).status_code == 401


@pytest.mark.parametrize("path", ["/api/v1/buildings/{b}", "/api/v1/buildings/{b}/owners",
                                  "/api/v1/buildings/{b}/equipment", "/api/v1/buildings/{b}/points",
                                  "/api/v1/buildings/{b}/latest", "/api/v1/buildings/{b}/brick.ttl",
                                  "/api/v1/buildings/{b}/points/ch1-chws/history",
                                  "/api/v1/buildings/{b}/subsidies", "/api/v1/alarms?building={b}",
                                  "/api/v1/projects?building={b}"])
def test_other_owners_building_is_404_like_a_missing_one(served: Served, path: str) -> None:
    foreign = served.get(path.format(b="chaotianmen-harbour"), "yuxin")
    missing = served.get(path.format(b="no-such-building"), "yuxin")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Not Found"}
    assert served.get(path.format(b="chaotianmen-harbour"), "harbour").status_code == 200


def test_owner_never_sees_another_owners_data_anywhere(served: Served) -> None:
    site = load_site(str(served.env.site_path))
    others = [x for b in site.buildings if b.id != B for x in (b.id, b.name.zh, b.name.en)]
    for path in ("/api/v1/buildings", "/api/v1/alarms", "/api/v1/projects", "/api/v1/subsidies",
                 f"/api/v1/buildings/{B}", f"/api/v1/buildings/{B}/latest"):
        r = served.get(path, "yuxin")
        assert r.status_code == 200, path
        leaked = [x for x in others if x in r.text]
        assert not leaked, (path, leaked)


def test_equipment_and_points_are_the_site_model(served: Served) -> None:
    bf = load_site(str(served.env.site_path)).building(B)
    eq = served.get(f"/api/v1/buildings/{B}/equipment", limit=1000).json()
    assert [e["id"] for e in eq["items"]] == [e.id for e in bf.equipment]
    assert [e["brick"] for e in eq["items"]] == [f"brick:{e.brick_class}" for e in bf.equipment]
    pts = served.get(f"/api/v1/buildings/{B}/points", limit=1000).json()
    want = [(f"{B}/{p.id}", f"brick:{p.brick}", p.unit) for e in bf.equipment for p in e.points]
    assert [(p["key"], p["brick"], p["unit"]) for p in pts["items"]] == want
    assert pts["total"] == len(want)
    sat = next(p for p in pts["items"] if p["brick"] == "brick:Zone_Air_Temperature_Sensor")
    assert {"zone", "air", "temp", "sensor", "point", "unit:degC"} <= set(sat["tags"])
    sp = served.get(f"/api/v1/buildings/{B}/points", brick="Zone_Air_Temperature_Setpoint").json()["items"]
    assert sp and all("sp" in p["tags"] and "sensor" not in p["tags"] for p in sp)
    meter = next(p for _, p in bf.points() if p.counter and p.unit == "kWh")
    assert {"elec", "energy", "totalized"} <= set(haystack_tags(meter))


def test_latest_is_what_the_store_holds(served: Served) -> None:
    r = served.get(f"/api/v1/buildings/{B}/latest", limit=1000).json()
    want = served.store.latest(building=B)
    assert r["total"] == len(want) > 100
    for item in r["items"]:
        got = want[item["point"]]
        assert item["ts"] == got.ts and item["value"] == got.value and item["quality"] == str(got.quality)


def test_history_pages_are_the_store_aggregate(served: Served) -> None:
    end = served.env.end // 3600 * 3600
    start = end - 86400
    key = f"{B}/ahu1-sat"
    want = served.store.aggregate([key], start, end, 3600, Agg.MEAN, "Asia/Shanghai")[key]
    got, nxt, pages = [], start, 0
    while nxt is not None:
        page = served.get(f"/api/v1/buildings/{B}/points/ahu1-sat/history", start=nxt, end=end, window=3600,
                          agg="mean", limit=10).json()
        assert len(page["items"]) <= 10
        got += [(x["t"], x["v"]) for x in page["items"]]
        nxt, pages = page["next_start"], pages + 1
    assert pages == 3 and got == [tuple(x) for x in want] and len(got) == 24
    mx = served.get(f"/api/v1/buildings/{B}/points/ahu1-sat/history", start=start, end=end, window=86400,
                    agg="max").json()
    # whole local days: the API moves start back to the local midnight (a page never splits a window), so the
    # last 24 hours are usually two days, the first of them whole
    assert mx["start"] <= start and (start - mx["start"]) < 86400 and mx["end"] == end
    days = served.store.aggregate([key], mx["start"], end, 86400, Agg.MAX, "Asia/Shanghai")[key]
    assert [(x["t"], x["v"]) for x in mx["items"]] == [(t, pytest.approx(v)) for t, v in days]
    assert served.get(f"/api/v1/buildings/{B}/points/ahu1-sat/history", start=end, end=start).status_code == 422
    assert served.get(f"/api/v1/buildings/{B}/points/nope/history").status_code == 404


def test_energy_matches_the_telemetry_queries(served: Served) -> None:
    site = load_site(str(served.env.site_path))
    end, start = served.env.end // 3600 * 3600, served.env.end // 3600 * 3600 - 86400
    hourly = served.get(f"/api/v1/buildings/{B}/energy", start=start, end=end, resolution="1h").json()
    assert hourly["building"]["code"].startswith("500103A") and hourly["period"]["resolution"] == "1h"
    want = energy_by_subitem(served.store, site, B, start, end, "hour")
    for sub, series in want.items():
        got = [r["value"] for r in hourly["records"] if r["energy_type"] == "electricity" and r["subitem"] == sub]
        assert got == pytest.approx([v for _, v in series], rel=1e-6, abs=1e-3), sub
    kinds = {(r["energy_type"], r["item_code"]) for r in hourly["records"]}
    assert {("electricity", "01000"), ("electricity", "01B00"), ("water", "02000"), ("gas", "03000")} <= kinds
    quarter = served.get(f"/api/v1/buildings/{B}/energy", start=start, end=end, resolution="15min",
                         format="csv").text.splitlines()
    assert quarter[0].startswith("building_code,building_id,energy_type")
    total_q = sum(float(x.split(",")[8]) for x in quarter[1:] if ",electricity,total," in x)
    total_h = sum(r["value"] for r in hourly["records"] if r["subitem"] == "total" and r["energy_type"] ==
                  "electricity")
    assert total_q == pytest.approx(total_h, rel=1e-3)
    assert served.get(f"/api/v1/buildings/{B}/energy", "tech", start=start, end=end).status_code == 403


def test_alarms_are_the_alarm_book(served: Served) -> None:
    mine = served.get("/api/v1/alarms", "yuxin").json()["items"]
    assert sorted(a["rule"] for a in mine) == ["ahu-sat-high", "switch-room-hot"]
    assert {a["building"] for a in served.get("/api/v1/alarms").json()["items"]} == {B, "chaotianmen-harbour"}
    open_ = served.get("/api/v1/alarms", state="raised").json()["items"]
    assert sorted(a["rule"] for a in open_) == ["ahu-sat-high", "co2-high"]
    assert [a["rule"] for a in served.get("/api/v1/alarms", "harbour").json()["items"]] == ["co2-high"]


def test_alarms_show_groups_and_suppressed_ones_on_request(served: Served) -> None:
    """A grouped alarm lists its points; flood-suppressed alarms are left out unless include_suppressed=true."""
    import time as _time

    from sqlalchemy import delete

    from rules.alarms import Alarm, AlarmBook, FloodControl
    from tests.seed import alarm_event

    d, now = "daping-makerworks", _time.time()
    book = AlarmBook(served.engine, flood=FloodControl(rule_limit=1))
    try:
        book.apply([alarm_event("raise", "sv-stale", d, p, now - 60) for p in ("rtu1-zat", "rtu2-zat", "rtu1-sat")])
        book.apply([alarm_event("raise", "sv-flatline", d, "rtu2-sat", now - 3000)])  # one point: a single alarm
        book.apply([alarm_event("raise", "sv-range", d, p, now - 30 + i) for i, p in enumerate(("a", "b"))])
        shown = served.get("/api/v1/alarms", building=d).json()["items"]
        assert sorted((a["rule"], a["subject"], tuple(a["points"])) for a in shown) == [
            ("sv-flatline", "rtu2-sat", ()), ("sv-range", "a", ()),
            ("sv-stale", "*", ("rtu1-sat", "rtu1-zat", "rtu2-zat"))]
        every = served.get("/api/v1/alarms", building=d, include_suppressed="true").json()["items"]
        assert [(a["subject"], a["flood"], a["suppressed"]) for a in every if a not in shown] == [("b", True, True)]
    finally:
        with book.Session.begin() as s:
            s.execute(delete(Alarm).where(Alarm.building == d))


def test_projects_and_subsidies_are_the_records(served: Served) -> None:
    from buildings.records import queries as q

    with session_factory(served.engine)() as s:
        want = q.project_status(s, building_id=B)
    got = served.get("/api/v1/projects", "yuxin").json()["items"]
    assert json.loads(json.dumps(want, default=str)) == got
    apps = served.get("/api/v1/subsidies", "yuxin").json()["items"]
    assert [(a["application_id"], a["status"], a["paid"]) for a in apps] == [
        (a["id"], a["status"], a["paid"]) for p in want for a in p["applications"]]
    elig = served.get(f"/api/v1/buildings/{B}/subsidies", "yuxin").json()["policies"]
    assert elig and all(p["verdict"] in ("eligible", "not_eligible", "unknown", "incomplete") or p["verdict"]
                        for p in elig)
    assert served.get("/api/v1/projects", "tech").status_code == 403


def test_savings_endpoint_is_scoped_and_says_why_it_refuses(served: Served) -> None:
    """Two days of history: the one savings function refuses the baseline, and the API says why (422); the
    endpoint is scoped like the rest (another owner's building 404, technicians 403)."""
    r = served.get(f"/api/v1/buildings/{B}/savings", "district")
    assert r.status_code == 422 and r.json()["detail"].startswith("baseline refused: "), r.text
    assert served.get(f"/api/v1/buildings/{B}/savings", "yuxin").status_code == 422  # its own building
    assert served.get("/api/v1/buildings/daping-makerworks/savings", "yuxin").status_code == 404
    assert served.get(f"/api/v1/buildings/{B}/savings", "tech").status_code == 403
    r = served.get(f"/api/v1/buildings/{B}/savings", "district", baseline="2024-07-01:2025-06-30")
    assert r.status_code == 422 and "both" in r.json()["detail"]
    r = served.get(f"/api/v1/buildings/{B}/savings", "district", baseline="2025-06-30:2024-07-01",
                   reporting="2025-07-01:2026-06-30")
    assert r.status_code == 422 and "before" in r.json()["detail"]


def test_rate_limit_gives_429(served: Served) -> None:
    codes = [served.get("/api/v1/catalogue", "slow").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    r = served.get("/api/v1/catalogue", "slow")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert served.get("/api/v1/catalogue", "district").status_code == 200  # other tokens are not affected


def test_every_request_is_in_the_audit_chain(served: Served) -> None:
    from api.evidence import verify_all
    from buildings.records.models import AuditLog

    served.get(f"/api/v1/buildings/{B}/latest", "harbour")
    served.get("/api/v1/buildings", None)
    with session_factory(served.engine)() as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == "api_request").order_by(AuditLog.id)))
    assert rows[-2].actor == f"token:{served.env.ids['harbour']}" and rows[-2].entity_id.endswith("/latest")
    assert json.loads(rows[-2].new_value)["status"] == 404
    assert rows[-1].actor == "anonymous" and json.loads(rows[-1].new_value)["status"] == 401
    text = " ".join(f"{r.actor} {r.entity_id} {r.new_value}" for r in rows)
    assert "rft_" not in text  # the token itself is never logged
    assert all(r.hash for r in rows)
    report = verify_all(served.engine)
    assert report.ok, report.problems


def test_personal_fields_masked_without_the_pii_right(served: Served) -> None:
    path = "/api/v1/buildings/huaxin-building/owners"
    for token in ("district", "f03", "tech"):
        r = served.get(path, token)
        assert r.status_code == 200 and r.json()["masked"] is True
        assert not [x for x in PERSONAL if x in r.text], token
        f03 = next(o for o in r.json()["owners"] if o["owner_id"] == "f03-individuals")
        c = f03["contacts"][0]
        assert (c["contact_name"], c["id_number"], c["phone"]) == ("王**", "500103********1234", "138****5678")
        assert f03["name"].startswith("3") and "*" in f03["name"]  # an individual owner row's name
        podium = next(o for o in r.json()["owners"] if o["owner_id"] == "podium-retail")
        assert podium["name"].startswith("华新百货有限公司")  # a company's name is not personal
    clear = served.get(path, "district_pii")
    assert clear.json()["masked"] is False and all(x in clear.text for x in PERSONAL)
    detail = served.get("/api/v1/buildings/huaxin-building", "district").text
    assert not [x for x in PERSONAL if x in detail]


def test_catalogue_and_brick_model(served: Served) -> None:
    import rdflib

    cat = served.get("/api/v1/catalogue", "yuxin").json()["datasets"]
    by_id = {d["id"]: d for d in cat}
    assert {"buildings", "owners", "brick-model", "latest-values", "history", "subitem-energy", "alarms",
            "retrofit-projects", "subsidies"} <= set(by_id)
    for d in cat:
        assert d["fields"] and d["update_interval"] and d["owner"] and d["readers"]
        assert d["sensitivity"] in ("public", "internal", "restricted", "personal")
    assert by_id["owners"]["sensitivity"] == "personal"
    assert {f["name"] for f in by_id["owners"]["fields"] if f["personal"]} == {"name", "contact_name", "id_number",
                                                                                "phone"}
    r = served.get(f"/api/v1/buildings/{B}/brick.ttl", "yuxin")
    assert r.headers["content-type"].startswith("text/turtle")
    g = rdflib.Graph().parse(data=r.text, format="turtle")
    brick = rdflib.Namespace("https://brickschema.org/schema/Brick#")
    bf = load_site(str(served.env.site_path)).building(B)
    n_points = sum(len(e.points) for e in bf.equipment)
    assert len(list(g.subjects(brick.isPointOf, None))) == n_points
    assert (rdflib.URIRef(f"urn:retrofit:{B}"), rdflib.RDF.type, brick.Building) in g
    sat = rdflib.URIRef(f"urn:retrofit:{B}/ahu1-sat")
    assert (sat, rdflib.RDF.type, brick.Supply_Air_Temperature_Sensor) in g
    assert (sat, brick.hasUnit, rdflib.URIRef("http://qudt.org/vocab/unit/DEG_C")) in g


def test_openapi_is_published(served: Served) -> None:
    spec = requests_get_json(served.base + "/openapi.json")
    paths = spec["paths"]
    for p in ("/api/v1/buildings", "/api/v1/buildings/{building_id}/latest", "/api/v1/alarms", "/api/v1/projects",
              "/api/v1/subsidies", "/api/v1/catalogue", "/api/v1/buildings/{building_id}/energy",
              "/api/v1/buildings/{building_id}/points/{point_id}/history", "/api/v1/buildings/{building_id}/savings"):
        assert "get" in paths[p], p
    assert not any("post" in v or "put" in v or "delete" in v for v in paths.values())  # read-only


def requests_get_json(url: str) -> dict:
    import requests

    r = requests.get(url, timeout=30)
    r.raise_for_status()
    return r.json()


def test_no_audit_log_no_data(tmp_path) -> None:
    """Fail closed: a records database without the audit log serves nothing (503), it does not serve unlogged."""
    from api.app import create_app
    from api.tokens import create_token
    from buildings.records.base import make_engine
    from tests.api.conftest import serve

    engine = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    site = load_site(str(Path(__file__).resolve().parents[2] / "buildings" / "sites" / "yuzhong"))
    app = create_app(site, engine, None)
    _, token = create_token(engine, "t", "district", days=1)
    with serve(app) as base:
        r = requests.get(base + "/api/v1/buildings", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 503 and "audit log unavailable" in r.json()["detail"]
    assert "jiefangbei" not in r.text
    engine.dispose()
