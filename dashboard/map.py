"""The portfolio's district map: an offline base map (district outline, river water) and the buildings on it,
coloured by energy intensity or by alarm state, with a click through to the building page.

Why an SVG scatter on longitude/latitude axes and not a tile or geo map: Plotly's ``scattergeo`` fetches its
world topojson from a CDN and ``scattermap`` (MapLibre) wants tiles and WebGL; district networks and headless
browsers often have neither. At district scale (a few km) an equirectangular view with the aspect ratio
corrected for the latitude is accurate to well under a pixel, and the base map is a small GeoJSON file shipped
with the package (``dashboard/data/district.geojson``, built by ``scripts/build_district_map.py`` from open
data) or named by the ``map_file`` setting.

The file is a GeoJSON FeatureCollection with a top-level ``retrofit`` member saying where the data came from::

    {"type": "FeatureCollection",
     "retrofit": {"source": "...", "licence": "ODbL-1.0", "attribution": "© OpenStreetMap contributors"},
     "features": [{"type": "Feature", "properties": {"kind": "district", "name_zh": "渝中区",
                   "name_en": "Yuzhong District"}, "geometry": {"type": "Polygon", ...}}, ...]}

``kind`` is ``district`` (drawn as the outline) or ``water`` (drawn as river water); geometries are Polygon or
MultiPolygon in WGS 84 longitude/latitude.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from dashboard.i18n import EMPTY, Tr

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "district.geojson"
KINDS = ("district", "water")
MODES = ("eui", "alarms")
ALARM_STATES = ("critical", "fault", "warning", "none")  # worst first
ALARM_COLOURS = {"critical": "#c62828", "fault": "#ef6c00", "warning": "#fdd835", "none": "#2e7d32"}
NO_DATA_COLOUR = "#9e9e9e"
EUI_SCALE = "RdYlGn_r"
DISTRICT_FILL, DISTRICT_LINE = "rgba(236,231,218,0.9)", "#5d4037"
WATER_FILL, WATER_LINE = "rgba(144,194,231,0.9)", "#4a90c2"


class MapDataError(ValueError):
    """The base map file is unusable; the message names the file and the feature."""


@dataclass(frozen=True)
class Area:
    """One base-map feature: its kind, names and rings of (lon, lat)."""

    kind: str
    name_zh: str
    name_en: str
    rings: tuple[tuple[tuple[float, float], ...], ...]


@dataclass(frozen=True)
class Basemap:
    """The loaded base map and the provenance the page must show."""

    path: str
    areas: tuple[Area, ...]
    source: str
    licence: str
    attribution: str

    def of(self, kind: str) -> list[Area]:
        return [a for a in self.areas if a.kind == kind]

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(min lon, min lat, max lon, max lat) of the district outline, else of everything."""
        pts = [p for a in (self.of("district") or self.areas) for r in a.rings for p in r]
        if not pts:
            return None
        return (min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts))


@dataclass(frozen=True)
class Marker:
    """One building as the map shows it (already in the user's language)."""

    id: str
    name: str
    lat: float
    lon: float
    eui: float | None
    alarms: Mapping[str, int] = field(default_factory=dict)  # severity -> open count
    stage: str = "-"
    area_m2: float = 0.0

    @property
    def state(self) -> str:
        return alarm_state(self.alarms)


def alarm_state(counts: Mapping[str, int]) -> str:
    """The worst open severity: critical, fault, warning (warnings and advisories) or none."""
    if counts.get("critical", 0):
        return "critical"
    if counts.get("fault", 0):
        return "fault"
    if counts.get("warning", 0) or counts.get("advisory", 0):
        return "warning"
    return "none"


def _rings(geometry: Any, where: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise MapDataError(f"{where}: geometry must be a Polygon or MultiPolygon")
    polys = [geometry.get("coordinates")] if geometry["type"] == "Polygon" else geometry.get("coordinates")
    out = []
    try:
        for poly in polys or []:
            for ring in poly:
                pts = tuple((float(x), float(y)) for x, y, *_ in ring)
                if len(pts) < 4 or not all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in pts):
                    raise MapDataError(f"{where}: a ring needs 4+ longitude/latitude positions")
                out.append(pts)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MapDataError):
            raise
        raise MapDataError(f"{where}: coordinates are not [longitude, latitude] pairs ({exc})") from None
    if not out:
        raise MapDataError(f"{where}: no coordinates")
    return tuple(out)


def parse_basemap(doc: Any, path: str) -> Basemap:
    """Validate a base-map GeoJSON document (see the module doc); every problem names the file and feature."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise MapDataError(f"{path}: not a GeoJSON FeatureCollection")
    meta = doc.get("retrofit")
    if not isinstance(meta, dict) or not all(str(meta.get(k) or "").strip()
                                             for k in ("source", "licence", "attribution")):
        raise MapDataError(f"{path}: the 'retrofit' member must give source, licence and attribution")
    areas = []
    for i, feat in enumerate(doc.get("features") or []):
        props = (feat or {}).get("properties") or {}
        kind = props.get("kind")
        where = f"{path}: feature {i}"
        if kind not in KINDS:
            raise MapDataError(f"{where}: properties.kind must be one of {', '.join(KINDS)}, not {kind!r}")
        name_zh, name_en = str(props.get("name_zh") or ""), str(props.get("name_en") or "")
        areas.append(Area(kind, name_zh or name_en, name_en or name_zh, _rings(feat.get("geometry"), where)))
    if not any(a.kind == "district" for a in areas):
        raise MapDataError(f"{path}: no feature of kind 'district' (the outline)")
    return Basemap(path, tuple(areas), str(meta["source"]), str(meta["licence"]), str(meta["attribution"]))


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Basemap:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise MapDataError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    return parse_basemap(doc, path)


def load_basemap(path: str | Path | None = None) -> Basemap | None:
    """The base map at path (default: the shipped file); None when there is no such file."""
    p = Path(path) if path else DEFAULT_FILE
    if not p.is_file():
        if path:
            raise MapDataError(f"{p}: no such file (the map_file setting)")
        return None
    return _load(str(p), p.stat().st_mtime)


def _area_trace(areas: Sequence[Area], kind: str, t: Tr) -> go.Scatter:
    """All rings of one kind as one filled SVG trace (rings separated by gaps)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for a in areas:
        for ring in a.rings:
            xs += [p[0] for p in ring] + [None]
            ys += [p[1] for p in ring] + [None]
    names = "、".join(dict.fromkeys(t.pick(a.name_zh, a.name_en) for a in areas if a.name_zh or a.name_en))
    fill, line = (DISTRICT_FILL, DISTRICT_LINE) if kind == "district" else (WATER_FILL, WATER_LINE)
    return go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=fill, name=names or t(f"map.{kind}"),
                      line={"color": line, "width": 1.5 if kind == "district" else 0.5},
                      hoverinfo="skip", showlegend=False, meta={"layer": kind})


def base_traces(basemap: Basemap | None, t: Tr) -> list[go.Scatter]:
    """The district outline under the river water, both unclickable."""
    if basemap is None:
        return []
    return [_area_trace(basemap.of(k), k, t) for k in KINDS if basemap.of(k)]


def _hover(t: Tr) -> str:
    return ("<b>%{customdata[1]}</b><br>" + t("col.eui") + ": %{customdata[2]}<br>"
            + t("map.open_alarms") + ": %{customdata[3]}<br>" + t("col.stage") + ": %{customdata[4]}<extra></extra>")


def _alarms_text(m: Marker, t: Tr) -> str:
    total = sum(m.alarms.values())
    if not total:
        return t("map.state.none")
    parts = [f"{t('severity.' + s)} {n}" for s, n in sorted(m.alarms.items()) if n]
    return f"{total} ({', '.join(parts)})"


def _points(markers: Sequence[Marker], t: Tr, **kw: Any) -> go.Scatter:
    custom = [[m.id, m.name, t.num(m.eui), _alarms_text(m, t), m.stage] for m in markers]
    marker = {"size": [min(40.0, max(12.0, math.sqrt(m.area_m2 or 0) / 8)) for m in markers],
              "line": {"width": 1, "color": "#333"}, **kw.pop("marker", {})}
    return go.Scatter(x=[m.lon for m in markers], y=[m.lat for m in markers], mode="markers+text",
                      text=[m.name for m in markers], textposition="top center", customdata=custom,
                      hovertemplate=_hover(t), marker=marker, **kw)


def building_traces(markers: Sequence[Marker], mode: str, t: Tr) -> list[go.Scatter]:
    """The buildings: one trace on a continuous EUI scale (grey for no data), or one per alarm state."""
    if mode not in MODES:
        raise ValueError(f"map colour mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "alarms":
        return [_points(group, t, name=t(f"map.state.{s}"), meta={"layer": "buildings", "state": s},
                        marker={"color": ALARM_COLOURS[s]})
                for s in ALARM_STATES if (group := [m for m in markers if m.state == s])]
    known = [m for m in markers if m.eui is not None]
    out = []
    if known:
        euis = [float(m.eui) for m in known if m.eui is not None]
        out.append(_points(known, t, name=t("col.eui"), meta={"layer": "buildings"}, showlegend=False, marker={
            "color": euis, "colorscale": EUI_SCALE, "cmin": min(euis), "cmax": max(euis) + 1e-9,
            "showscale": True, "colorbar": {"title": {"text": "kWh/m²·a", "side": "right"}, "thickness": 14}}))
    missing = [m for m in markers if m.eui is None]
    if missing:
        out.append(_points(missing, t, name=t("map.no_eui"), meta={"layer": "buildings", "state": "no_eui"},
                           marker={"color": NO_DATA_COLOUR}))
    return out


def _view(markers: Sequence[Marker], basemap: Basemap | None) -> tuple[list[float], list[float]]:
    """Axis ranges covering the district and every building, padded."""
    lons = [m.lon for m in markers]
    lats = [m.lat for m in markers]
    b = basemap.bounds() if basemap else None
    if b:
        lons += [b[0], b[2]]
        lats += [b[1], b[3]]
    pad_x = max(0.006, (max(lons) - min(lons)) * 0.12)  # room for the name labels
    pad_y = max(0.004, (max(lats) - min(lats)) * 0.05)
    return [min(lons) - pad_x, max(lons) + pad_x], [min(lats) - pad_y, max(lats) + pad_y]


def figure(markers: Sequence[Marker], mode: str, t: Tr, basemap: Basemap | None) -> go.Figure:
    """The whole map: base layers, buildings, aspect corrected for the latitude, attribution in the corner."""
    fig = go.Figure(base_traces(basemap, t) + building_traces(markers, mode, t))
    xr, yr = _view(markers, basemap)
    axis = {"showgrid": False, "zeroline": False, "showticklabels": False, "ticks": "", "title": None}
    fig.update_layout(
        height=520, margin={"l": 4, "r": 4, "t": 4, "b": 4}, plot_bgcolor="#f7f7f4", clickmode="event+select",
        dragmode="pan", legend={"orientation": "h", "y": 0.0, "x": 0.0, "bgcolor": "rgba(255,255,255,0.7)"},
        xaxis={**axis, "range": xr}, yaxis={**axis, "range": yr, "scaleanchor": "x",
                                            "scaleratio": 1 / math.cos(math.radians(sum(yr) / 2))})
    if basemap is not None:
        fig.add_annotation(text=basemap.attribution, xref="paper", yref="paper", x=1, y=0, xanchor="right",
                           yanchor="bottom", showarrow=False, font={"size": 10, "color": "#555"},
                           bgcolor="rgba(255,255,255,0.7)")
    return fig


def clicked_building(event: Any, allowed: Iterable[str]) -> str | None:
    """The building id of the first selected marker, if it is one the user may see (the selection comes from
    the browser)."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    ok = set(allowed)
    for p in points:
        custom = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(custom, list | tuple) and custom and custom[0] in ok:
            return str(custom[0])
    return None


def markers(df: Any, t: Tr) -> list[Marker]:
    """The portfolio table's rows (columns named by the catalogue, plus id/lat/lon) as map markers."""
    out = []
    for r in df.dropna(subset=["lat", "lon"]).to_dict("records"):
        eui = r.get(t("col.eui"))
        out.append(Marker(
            id=str(r["id"]), name=str(r[t("col.building")]), lat=float(r["lat"]), lon=float(r["lon"]),
            eui=None if eui is None or (isinstance(eui, float) and math.isnan(eui)) else float(eui),
            alarms={"critical": int(r.get(t("col.alarms_critical")) or 0),
                    "fault": int(r.get(t("col.alarms_fault")) or 0),
                    "warning": int(r.get(t("col.alarms_warning")) or 0)},
            stage=str(r.get(t("col.stage")) or EMPTY), area_m2=float(r.get(t("col.area")) or 0.0)))
    return out


def show(df: Any, t: Tr, map_file: str | Path | None = None) -> None:
    """The portfolio's map section: colour selector, the map, its provenance; a click opens the building."""
    import streamlit as st

    shown = markers(df, t)
    if not shown:
        st.info(t("map.no_location"))
        return
    basemap = None
    try:
        basemap = load_basemap(map_file)
    except (MapDataError, OSError) as exc:
        st.warning(t("map.bad_basemap", error=str(exc)))
    # the key carries the language: a keyed widget keeps its first option labels in the browser
    mode = st.radio(t("map.colour_by"), MODES, horizontal=True, format_func=lambda m: t(f"map.mode.{m}"),
                    key=f"map_mode_{t.lang}")
    event = st.plotly_chart(figure(shown, mode, t, basemap), width="stretch", key=f"map_{mode}",
                            on_select="rerun", selection_mode="points",
                            config={"displaylogo": False, "scrollZoom": True})
    chosen = clicked_building(event, [m.id for m in shown])
    if chosen:
        st.switch_page("pages/building.py", query_params={"building": chosen})
    if basemap is None:
        st.caption(t("map.no_basemap"))
    else:
        st.caption(t("map.attribution", attribution=basemap.attribution, licence=basemap.licence,
                     source=basemap.source))
    st.caption(t("map.click_hint"))
