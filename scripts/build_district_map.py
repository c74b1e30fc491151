"""Build the dashboard's district base map (dashboard/data/district.geojson) from open GeoJSON data.

Input: a GeoJSON FeatureCollection holding the district's boundary (for Yuzhong: geoBoundaries CHN ADM3, or an
OpenStreetMap export of the district's boundary relation, both ODbL) and, optionally, one with the river water
polygons (an OpenStreetMap export of natural=water / water=river areas). The district is picked by name; the
water is clipped to the district's surroundings; everything is simplified (Douglas-Peucker, shapely) to a few
hundred points and written with its source and licence, which the dashboard shows under the map.

Example:

    python scripts/build_district_map.py --boundary geoBoundaries-CHN-ADM3_simplified.geojson \\
        --name 渝中区 --name "Yuzhong District" --water yuzhong-water.geojson \\
        --source "geoBoundaries CHN ADM3 (from OpenStreetMap); OpenStreetMap water areas, 2026-12" \\
        --licence ODbL-1.0 --attribution "© OpenStreetMap contributors"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dashboard" / "data" / "district.geojson"
M_PER_DEG = 111_320.0


class BuildError(ValueError):
    """The inputs cannot make a base map; the message says which file and what to change."""


def _features(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BuildError(f"{path}: cannot read GeoJSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise BuildError(f"{path}: not a GeoJSON FeatureCollection")
    return [f for f in doc.get("features") or [] if isinstance(f, dict) and f.get("geometry")]


def pick_district(path: Path, names: list[str]) -> Any:
    """The (multi)polygon of the feature one of whose string properties equals one of names."""
    from shapely.geometry import shape

    wanted = {n.strip().casefold() for n in names}
    seen: list[str] = []
    for f in _features(path):
        values = [str(v) for v in (f.get("properties") or {}).values() if isinstance(v, str)]
        seen += values[:1]
        if wanted & {v.strip().casefold() for v in values}:
            geom = shape(f["geometry"])
            if geom.geom_type not in ("Polygon", "MultiPolygon"):
                raise BuildError(f"{path}: the feature named {names[0]!r} is a {geom.geom_type}, not an area")
            return geom
    raise BuildError(f"{path}: no feature named {' or '.join(map(repr, names))} "
                     f"({len(seen)} features, e.g. {', '.join(seen[:5])})")


def water_within(path: Path, frame: Any) -> list[Any]:
    """The water areas of path clipped to frame (lines, points and empty pieces are dropped)."""
    from shapely.geometry import shape

    out = []
    for f in _features(path):
        geom = shape(f["geometry"])
        if geom.geom_type in ("Polygon", "MultiPolygon") and geom.intersects(frame):
            piece = geom.intersection(frame)
            if not piece.is_empty and piece.area > 0:
                out.append(piece)
    return out


def _simplified(geom: Any, tolerance_m: float) -> dict[str, Any]:
    from shapely.geometry import mapping

    simple = geom.simplify(tolerance_m / M_PER_DEG, preserve_topology=True)
    return json.loads(json.dumps(mapping(simple)), parse_float=lambda s: round(float(s), 5))


def count_points(geometry: dict[str, Any]) -> int:
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return sum(len(ring) for poly in polys for ring in poly)


def build(args: argparse.Namespace) -> dict[str, Any]:
    """The base-map document (validated by the dashboard's own reader)."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    from dashboard.map import parse_basemap

    district = pick_district(args.boundary, args.name)
    margin = args.margin_km * 1000 / M_PER_DEG
    frame = box(*district.bounds).buffer(margin, join_style="mitre")
    feats = [{"type": "Feature", "properties": {"kind": "district", "name_zh": args.name_zh or args.name[0],
                                                "name_en": args.name_en or args.name[-1]},
              "geometry": _simplified(district, args.tolerance_m)}]
    if args.water:
        water = water_within(args.water, frame)
        if water:
            feats.append({"type": "Feature", "properties": {"kind": "water", "name_zh": args.water_zh,
                                                            "name_en": args.water_en},
                          "geometry": _simplified(unary_union(water), args.tolerance_m)})
    doc = {"type": "FeatureCollection",
           "retrofit": {"source": args.source, "licence": args.licence, "attribution": args.attribution,
                        "simplified_m": args.tolerance_m},
           "features": feats}
    parse_basemap(doc, str(args.out))
    return doc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Example:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--boundary", type=Path, required=True, help="GeoJSON with the district's boundary")
    p.add_argument("--name", action="append", required=True, help="the district's name in the file (repeatable)")
    p.add_argument("--water", type=Path, help="GeoJSON with river water areas (optional)")
    p.add_argument("--source", required=True, help="where the data came from, with its date")
    p.add_argument("--licence", required=True, help="the data's licence, e.g. ODbL-1.0")
    p.add_argument("--attribution", required=True, help="the credit line the licence asks for")
    p.add_argument("--name-zh", default="渝中区")
    p.add_argument("--name-en", default="Yuzhong District")
    p.add_argument("--water-zh", default="长江、嘉陵江")
    p.add_argument("--water-en", default="Yangtze and Jialing rivers")
    p.add_argument("--tolerance-m", type=float, default=15.0, help="simplification tolerance (default 15 m)")
    p.add_argument("--margin-km", type=float, default=1.0, help="water kept around the district (default 1 km)")
    p.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT.relative_to(ROOT)})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        doc = build(args)
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    points = {f["properties"]["kind"]: count_points(f["geometry"]) for f in doc["features"]}
    print(json.dumps({"out": str(args.out), "points": points, "bytes": args.out.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
