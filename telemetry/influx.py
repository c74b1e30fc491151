"""The InfluxDB store over the v1 HTTP API: line protocol to /write, InfluxQL on /query.

One code path for InfluxDB 1.x (native), 2.x and 3.x (their v1 compatibility API with token auth). The
server version comes from /ping. On 1.x the database, a ``raw`` retention policy (default, kept
``raw_retention``) and a ``downsampled`` one (kept ``downsampled_retention``) are created when missing, with a
continuous query that rolls raw readings into hourly aggregates. Servers without continuous queries (2.x, 3.x
through the v1 API) get the same hourly aggregates from ``downsample()``, our own job (DownsampleJob runs it
every hour). ``downsample()`` also backfills history on 1.x, where CQs only ever see the current hour.

Schema (docs/telemetry.md):
  measurement ``readings``; tags ``building``, ``point`` and, with a tag resolver, ``equipment``, ``brick``,
  ``subitem`` (bounded: ids and classes only, never values or times); fields ``value`` (float),
  ``text`` (string readings), ``quality`` (string, always present); precision ms (or s).
  measurement ``readings_1h`` (RP ``downsampled`` on 1.x): fields mean, min, max, last (float), count (int)
  over good readings, same tags.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from influxdb_client import Point

from telemetry.reading import Quality, Reading
from telemetry.store import Agg, StoreAuthError, StoreError, StoreRejected, StoreUnavailable
from telemetry.windows import window_start

log = logging.getLogger(__name__)

MEASUREMENT = "readings"
DOWNSAMPLED = "readings_1h"
TagResolver = Callable[[str], dict[str, str]]
Row = tuple[str, float, "float | str | None", str]  # (point, ts, value, quality) as the buffer stores it
_INFLUX_AGG = {Agg.MEAN: "mean", Agg.MIN: "min", Agg.MAX: "max", Agg.SUM: "sum", Agg.LAST: "last",
               Agg.COUNT: "count"}
_LP_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}
_QUALITY_FIELD = {q: f'quality="{q.value}"' for q in Quality}
_QUALITY_SUFFIX = {q: f",{field} " for q, field in _QUALITY_FIELD.items()}


def strip_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without user:password@, user, password): credentials never travel or print inside a URL."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host)), parts.username, parts.password


def _q(s: str) -> str:
    """An InfluxQL string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(s: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lp_string(s: str) -> str:
    """A line-protocol string field value (backslash and double quote escaped)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def site_tag_resolver(site: Any) -> TagResolver:
    """Extra tags (equipment, brick, subitem) for a point key from a buildings.site.Site.

    Duck-typed so telemetry depends on buildings only by ids. Unknown points get no extra tags.
    """
    table: dict[str, dict[str, str]] = {}
    for key, ref in site.points.items():
        tags = {"equipment": ref.equipment.id, "brick": ref.point.brick}
        if ref.point.subitem:
            tags["subitem"] = ref.point.subitem
        table[key] = tags
    return lambda key: table.get(key, {})


class InfluxStore:
    """Telemetry in InfluxDB 1.x / 2.x / 3.x through the v1 HTTP API, one requests.Session."""

    kind = "influx"
    preferred_batch = 5000  # InfluxDB's documented sweet spot for line-protocol batches

    def __init__(self, url: str, database: str = "retrofit", *, username: str | None = None,
                 password: str | None = None, token: str | None = None, raw_retention: str = "400d",
                 downsampled_retention: str = "3650d", precision: str = "ms", verify_tls: bool | str = True,
                 timeout_s: float = 10.0, tag_resolver: TagResolver | None = None, create: bool = True) -> None:
        if precision not in ("ms", "s"):
            raise ValueError(f"precision must be 'ms' or 's', got {precision!r}")
        self.url, url_user, url_password = strip_credentials(url.rstrip("/"))
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise StoreError(f"InfluxDB URL {self.url!r} must start with http:// or https:// "
                             "(set RETROFIT_INFLUX_URL)")
        for name, value in (("raw_retention", raw_retention), ("downsampled_retention", downsampled_retention)):
            if not _DURATION.fullmatch(value):
                raise StoreError(f"{name} {value!r} is not an InfluxDB duration such as 400d, 52w, 8760h or INF "
                                 f"(RETROFIT_INFLUX_RAW_RETENTION)")
        self.database = database
        self.raw_retention = raw_retention
        self.downsampled_retention = downsampled_retention
        self.precision = precision
        self._scale = 1000 if precision == "ms" else 1
        self.timeout_s = timeout_s
        self._tags = tag_resolver
        self._prefix: dict[str, str] = {}
        self._http = requests.Session()
        self._verify = verify_tls  # passed per request: a REQUESTS_CA_BUNDLE variable would override Session.verify
        self._http.headers["Accept-Encoding"] = "identity"  # gzip costs InfluxDB more CPU than it saves
        username, password = username or url_user, password or url_password
        if token:
            # 2.x v1-compat and 3.x accept "Token"; the secret lives only in this header, never in a URL
            self._http.headers["Authorization"] = f"Token {token}"
            self.auth_setting = "RETROFIT_INFLUX_TOKEN"
        elif username or password:
            self._http.auth = (username or "", password or "")
            self.auth_setting = "RETROFIT_INFLUX_USERNAME / RETROFIT_INFLUX_PASSWORD"
        else:
            self.auth_setting = "RETROFIT_INFLUX_TOKEN (or _USERNAME/_PASSWORD)"
        self.server_version = "unknown"
        self.continuous_queries = False
        self.database_exists = True
        self._executor: ThreadPoolExecutor | None = None
        self._rp: str | None = None
        try:
            self.ping()
            self._check_auth()
            if create:
                try:
                    self.ensure_schema()
                except StoreAuthError as exc:  # the credentials work, but only an admin may create things
                    log.warning("InfluxDB user may not create or check database %s, its retention policies and "
                                "continuous query (%s); using what exists. Create them as an admin (see "
                                "docs/telemetry.md) or grant the user ALL PRIVILEGES", self.database, exc)
                    self._detect_schema()
            else:
                self._detect_schema()
        except BaseException:
            self._http.close()
            raise

    @classmethod
    def from_settings(cls, settings: Any, tag_resolver: TagResolver | None = None, create: bool = True
                      ) -> InfluxStore:
        """Build from retrofit.settings.Settings (secrets come only from the environment there)."""
        def secret(v: Any) -> str | None:
            return v.get_secret_value() if v is not None else None

        return cls(settings.influx_url, settings.influx_database, username=settings.influx_username,
                   password=secret(settings.influx_password), token=secret(settings.influx_token),
                   raw_retention=settings.influx_raw_retention, verify_tls=settings.influx_verify_tls,
                   tag_resolver=tag_resolver, create=create)

    def describe(self) -> str:
        return f"InfluxDB {self.server_version} at {self.url}, database {self.database}"

    def version(self) -> str:
        return f"InfluxDB {self.server_version}"

    # --- HTTP ------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._http.request(method, self.url + path, timeout=self.timeout_s, verify=self._verify,
                                      **kwargs)
        except requests.exceptions.SSLError as exc:
            reason = _ssl_reason(exc)
            raise StoreUnavailable(f"InfluxDB at {self.url}: TLS failed ({reason}); check the server certificate, "
                                   "or RETROFIT_INFLUX_VERIFY_TLS") from None
        except requests.RequestException as exc:
            raise StoreUnavailable(f"InfluxDB at {self.url} is not reachable ({type(exc).__name__}); start it "
                                   "or fix RETROFIT_INFLUX_URL. Readings wait in the buffer meanwhile.") from None

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        if resp.status_code < 300:
            return
        msg = _server_message(resp)
        if resp.status_code in (401, 403):
            raise StoreAuthError(f"InfluxDB at {self.url} refused the credentials for {what} "
                                 f"(HTTP {resp.status_code}: {msg}); check {self.auth_setting}")
        if resp.status_code == 400:
            raise StoreRejected(f"InfluxDB rejected {what} as malformed (HTTP 400): {msg}")
        if resp.status_code == 413:
            raise StoreRejected(f"InfluxDB refused {what}: request too large (HTTP 413): {msg}")
        raise StoreUnavailable(f"InfluxDB at {self.url} failed {what} (HTTP {resp.status_code}: {msg}); "
                               "will retry")

    def ping(self) -> str:
        """Reachability and version from /ping; raises StoreUnavailable."""
        resp = self._request("GET", "/ping")
        if resp.status_code not in (200, 204):
            self._raise_for(resp, "/ping")
        self.server_version = (resp.headers.get("X-Influxdb-Version") or _json_version(resp) or "unknown").lstrip("v")
        self.continuous_queries = self.server_version.startswith("1.")
        return self.server_version

    def query(self, q: str, db: bool = True, method: str = "POST") -> list[dict[str, Any]]:
        """Run InfluxQL; return the list of statement results; raise StoreError on any statement error."""
        params = {"epoch": "ms"}
        if db:
            params["db"] = self.database
        resp = self._request(method, "/query", params=params, data={"q": q})
        self._raise_for(resp, "a query")
        try:
            results = resp.json().get("results", [])
        except ValueError:
            raise StoreError(f"InfluxDB at {self.url} answered a query with non-JSON") from None
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxDB query failed: {r['error']} (query: {q[:300]})")
            # the statement-level flag means max-row-limit truncated the answer (1.6 also flags whole series
            # "partial" when it merged its internal 10,000-row chunks: that one is harmless)
            if r.get("partial"):
                raise StoreError("InfluxDB cut the answer short (its [http] max-row-limit); raise that limit to 0 "
                                 f"or query a shorter range (query: {q[:300]})")
        return results

    def _check_auth(self) -> None:
        """One authenticated request at start, so a wrong token fails here and clearly."""
        self.query("SHOW DATABASES", db=False)

    # --- schema ----------------------------------------------------------------------------------------------
    def _detect_schema(self) -> None:
        """Find the schema without creating anything (for checks and read-only users)."""
        self.database_exists = True
        if not self.continuous_queries:
            self._rp = None
            return
        try:
            rps = self._retention_policies()
        except StoreError as exc:
            if "not found" not in str(exc):
                raise
            self.database_exists, rps = False, {}
        self._rp = "raw" if "raw" in rps else None

    def _retention_policies(self) -> dict[str, dict[str, Any]]:
        """name -> {duration, default, ...} of the database's retention policies."""
        res = self.query(f"SHOW RETENTION POLICIES ON {_ident(self.database)}", db=False)
        return {row[0]: dict(zip(s["columns"], row, strict=False)) for s in res[0].get("series", [])
                for row in s.get("values", [])}

    def ensure_schema(self) -> None:
        """Create database, retention policies and the hourly continuous query when missing (1.x).

        2.x/3.x map databases to buckets themselves (DBRP / auto-create), so there we only write.
        """
        if not self.continuous_queries:
            self._rp = None
            return
        db = _ident(self.database)
        dbs = {row[0] for s in self.query("SHOW DATABASES", db=False)[0].get("series", [])
               for row in s.get("values", [])}
        if self.database not in dbs:
            self.query(f"CREATE DATABASE {db}", db=False)
        rps = self._retention_policies()
        if "raw" not in rps:
            self.query(f"CREATE RETENTION POLICY \"raw\" ON {db} DURATION {self.raw_retention} REPLICATION 1 DEFAULT",
                       db=False)
        elif (_hours(rps["raw"]["duration"]) != _hours(self.raw_retention)) or not rps["raw"]["default"]:
            self.query(f"ALTER RETENTION POLICY \"raw\" ON {db} DURATION {self.raw_retention} DEFAULT", db=False)
        if "downsampled" not in rps:
            self.query(f"CREATE RETENTION POLICY \"downsampled\" ON {db} DURATION {self.downsampled_retention} "
                       "REPLICATION 1", db=False)
        self._rp = "raw"
        cqs = self.query("SHOW CONTINUOUS QUERIES", db=False)
        names = {row[0] for s in cqs[0].get("series", []) if s.get("name") == self.database
                 for row in s.get("values", [])}
        if "retrofit_1h" not in names:
            self.query(f"CREATE CONTINUOUS QUERY \"retrofit_1h\" ON {db} BEGIN {self._rollup_select(into=True)} "
                       "GROUP BY time(1h), * END", db=False)

    def _rollup_select(self, into: bool) -> str:
        target = f" INTO {_ident(self.database)}.\"downsampled\".{_ident(DOWNSAMPLED)}" if into else ""
        return (f'SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max", '
                f'last("value") AS "last", count("value") AS "count"{target} FROM {self._from()} '
                "WHERE \"quality\" = 'good'")

    def _from(self) -> str:
        if self._rp:
            return f"{_ident(self.database)}.{_ident(self._rp)}.{_ident(MEASUREMENT)}"
        return _ident(MEASUREMENT)

    def downsample(self, start: float, end: float) -> int:
        """Hourly rollups of [start, end) into readings_1h; returns rows written. Safe to repeat.

        On 1.x the server does it (SELECT ... INTO); elsewhere we query the aggregates and write them back.
        """
        rng = f"time >= {_ms(start)}ms AND time < {_ms(end)}ms"
        if self.continuous_queries:
            res = self.query(f"{self._rollup_select(into=True)} AND {rng} GROUP BY time(1h), *")
            return int(sum(row[1] for s in res[0].get("series", []) for row in s.get("values", [])))
        res = self.query(f"{self._rollup_select(into=False)} AND {rng} GROUP BY time(1h), * fill(none)")
        lines = []
        for s in res[0].get("series", []):
            tags = ",".join(f"{_lp_key(k)}={_lp_key(v)}" for k, v in sorted(s.get("tags", {}).items()) if v)
            cols = s["columns"]
            for row in s.get("values", []):
                rec = dict(zip(cols, row, strict=True))
                fields = ",".join(f"{k}={float(rec[k])!r}" for k in ("mean", "min", "max", "last")
                                  if rec.get(k) is not None)
                lines.append(f"{DOWNSAMPLED},{tags} {fields},count={int(rec['count'])}i {rec['time']}")
        if lines:
            self.write_lines("\n".join(lines), precision="ms", rp="downsampled" if self._rp else None)
        return len(lines)

    # --- writing ---------------------------------------------------------------------------------------------
    def _series_prefix(self, point: str) -> str:
        """'readings,building=..,point=..,...' for a point, escaped by influxdb-client, cached per point."""
        p = Point(MEASUREMENT).tag("building", point.partition("/")[0]).tag("point", point)
        if self._tags is not None:
            for k, v in sorted(self._tags(point).items()):
                if v:
                    p.tag(k, v)
        line = p.field("x", 0.0).to_line_protocol()
        prefix = line.rsplit(" x=", 1)[0]
        self._prefix[point] = prefix
        return prefix

    def encode(self, rows: Sequence[Row]) -> str:
        """Line protocol for a batch of (point, ts, value, quality) rows, one line each, this store's precision."""
        prefixes = self._prefix
        for point in {r[0] for r in rows} - prefixes.keys():
            self._series_prefix(point)
        scale = self._scale
        if all(r[2].__class__ is float and r[2] - r[2] == 0.0 for r in rows):
            # the common case, finite floats only: one list comprehension (a third faster than the loop below)
            q = _QUALITY_SUFFIX
            return "\n".join([f"{prefixes[p]} value={v!r}{q[qual]}{int(ts * scale + 0.5)}" for p, ts, v, qual in rows])
        out = []
        append = out.append
        for point, ts, v, quality in rows:
            prefix = prefixes[point]
            t = int(ts * scale + 0.5)
            q = _QUALITY_FIELD[quality]
            if v.__class__ is float:
                if v - v == 0.0:  # finite (NaN and inf have no line-protocol form: kept as a value-less reading)
                    append(f"{prefix} value={v!r},{q} {t}")
                else:
                    append(f"{prefix} {q} {t}")
            elif v is None:
                append(f"{prefix} {q} {t}")
            elif isinstance(v, str):
                append(f"{prefix} text={_lp_string(v)},{q} {t}")
            else:
                f = float(v)
                append(f"{prefix} value={f!r},{q} {t}" if math.isfinite(f) else f"{prefix} {q} {t}")
        return "\n".join(out)

    def write(self, readings: Sequence[Reading]) -> None:
        """POST the batch as line protocol; returns once InfluxDB answered 204."""
        if readings:
            self.write_lines(self.encode([(r.point, r.ts, r.value, r.quality) for r in readings]))

    def write_rows(self, rows: Sequence[Row]) -> None:
        """write() for (point, ts, value, quality) tuples: the durable buffer's fast path (no Reading objects)."""
        if rows:
            self.write_lines(self.encode(rows))

    def write_lines(self, body: str | bytes, precision: str | None = None, rp: str | None = None) -> None:
        """POST line protocol as is (the durable buffer and the benchmark baseline use this)."""
        params = {"db": self.database, "precision": precision or self.precision}
        if rp or self._rp:
            params["rp"] = rp or self._rp  # type: ignore[assignment]
        data = body.encode("utf-8") if isinstance(body, str) else body
        resp = self._request("POST", "/write", params=params, data=data, headers=_LP_HEADERS)
        if resp.status_code != 204:
            lines = data.count(b"\n") + 1
            self._raise_for(resp, f"a write of {lines} lines")

    # --- reading ---------------------------------------------------------------------------------------------
    def _where_points(self, points: Sequence[str] | None, building: str | None) -> str:
        clauses = []
        if points is not None:
            clauses.append("(" + " OR ".join(f'"point" = {_q(p)}' for p in points) + ")")
        if building is not None:
            clauses.append(f'"building" = {_q(building)}')
        return " AND ".join(clauses)

    def latest(self, points: Sequence[str] | None = None, building: str | None = None) -> dict[str, Reading]:
        if points is not None and not points:
            return {}
        where = self._where_points(points, building)
        q = (f'SELECT "value", "text", "quality" FROM {self._from()} {"WHERE " + where if where else ""} '
             'GROUP BY "point" ORDER BY time DESC LIMIT 1')
        out: dict[str, Reading] = {}
        for s in self.query(q)[0].get("series", []):
            point = s["tags"]["point"]
            for row in s.get("values", [])[:1]:
                out[point] = _row_reading(point, row)
        return out

    def raw(self, point: str, start: float, end: float, limit: int | None = None) -> list[Reading]:
        q = (f'SELECT "value", "text", "quality" FROM {self._from()} WHERE "point" = {_q(point)} '
             f"AND time >= {_ms(start)}ms AND time < {_ms(end)}ms ORDER BY time ASC")
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        res = self.query(q)[0].get("series", [])
        return [_row_reading(point, row) for s in res for row in s.get("values", [])]

    def aggregate(self, points: Sequence[str], start: float, end: float, window_s: int, agg: Agg,
                  tz: str = "UTC") -> dict[str, list[tuple[float, float]]]:
        """Per point, (UTC start of the local-time window, value) per non-empty window, computed by InfluxQL."""
        agg = Agg(agg)
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        out: dict[str, list[tuple[float, float]]] = {p: [] for p in points}
        if not points:
            return out
        sel = f"{self._where_points(points, None)} AND \"quality\" = 'good'"
        group = f'GROUP BY time({int(window_s)}s), "point" fill(none)'
        if tz not in ("UTC", "Etc/UTC"):
            group += f" tz({_q(tz)})"
        if agg is not Agg.DELTA:
            q = (f'SELECT {_INFLUX_AGG[agg]}("value") FROM {self._from()} WHERE {sel} '
                 f"AND time >= {_ms(start)}ms AND time < {_ms(end)}ms {group}")
            for point, t, v in _series_rows(self.query(q)[0]):
                out[point].append((t / 1000.0, float(v)))
            return out
        return self._delta(points, start, end, window_s, tz, sel, group, out)

    def _delta(self, points: Sequence[str], start: float, end: float, window_s: int, tz: str, sel: str,
               group: str, out: dict[str, list[tuple[float, float]]]) -> dict[str, list[tuple[float, float]]]:
        """Counter increase per window: sum of non-negative differences, plus the value after each reset.

        InfluxQL cannot select a value next to its difference, so resets are handled apart. They are rare,
        and cheap to rule out: without a reset the non-negative differences of a point add up to last - first
        over the range (one plain aggregate, run beside the main query). Only points where they do not are
        searched for resets (difference < 0), whose values are then fetched. The range reaches one window
        back so the first window's first reading has its predecessor; windows before start are dropped.
        """
        first_window = window_start(start, window_s, tz)
        rng = f"time >= {_ms(first_window - window_s)}ms AND time < {_ms(end)}ms"
        inner = f'FROM {self._from()} WHERE {sel} AND {rng} GROUP BY "point"'
        q_inc = f'SELECT sum("d") FROM (SELECT non_negative_difference("value") AS "d" {inner}) WHERE {rng} {group}'
        q_span = f'SELECT first("value"), last("value") {inner}'
        pending = self._pool().submit(self.query, q_span)
        increases = self.query(q_inc)[0]
        spans = {s.get("tags", {}).get("point", ""): s["values"][0] for s in pending.result()[0].get("series", [])
                 if s.get("values")}
        sums: dict[tuple[str, float], float] = {}
        total: dict[str, float] = {}
        for point, t, v in _series_rows(increases):
            sums[(point, t / 1000.0)] = float(v)
            total[point] = total.get(point, 0.0) + float(v)
        suspects = []
        for point, (_, first, last) in spans.items():
            if first is None or last is None:
                continue
            tolerance = 1e-9 * max(abs(first), abs(last), 1.0)
            if total.get(point, 0.0) > (last - first) + tolerance:  # something went down: a reset
                suspects.append(point)
        if suspects:
            where = "(" + " OR ".join(f'"point" = {_q(p)}' for p in suspects) + ") AND \"quality\" = 'good'"
            q_reset = (f'SELECT "d" FROM (SELECT difference("value") AS "d" FROM {self._from()} WHERE {where} '
                       f'AND {rng} GROUP BY "point") WHERE "d" < 0 AND {rng} GROUP BY "point"')
            reset_rows = list(_series_rows(self.query(q_reset)[0]))
            if reset_rows:
                stmts = "; ".join(f'SELECT "value" FROM {self._from()} WHERE "point" = {_q(p)} AND time = {t}ms'
                                  for p, t, _ in reset_rows)
                for res, (point, t, _) in zip(self.query(stmts), reset_rows, strict=True):
                    for _, _, v in _series_rows(res):
                        key = (point, window_start(t / 1000.0, window_s, tz))
                        sums[key] = sums.get(key, 0.0) + float(v)
        for (point, w), v in sorted(sums.items()):
            if w >= first_window:
                out[point].append((w, v))
        return out

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="influx-query")
        return self._executor

    def series(self, building: str | None = None) -> list[str]:
        where = f' WHERE "building" = {_q(building)}' if building is not None else ""
        res = self.query(f'SHOW TAG VALUES FROM {_ident(MEASUREMENT)} WITH KEY = "point"{where}')
        return sorted({row[1] for s in res[0].get("series", []) for row in s.get("values", [])})

    def count(self, points: Sequence[str] | None = None, start: float | None = None,
              end: float | None = None) -> int:
        clauses = []
        if points is not None:
            if not points:
                return 0
            clauses.append(self._where_points(points, None))
        if start is not None:
            clauses.append(f"time >= {_ms(start)}ms")
        if end is not None:
            clauses.append(f"time < {_ms(end)}ms")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        res = self.query(f'SELECT count("quality") FROM {self._from()}{where}')[0].get("series", [])
        return int(sum(row[1] for s in res for row in s.get("values", [])))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._http.close()

    def __enter__(self) -> InfluxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DownsampleJob(threading.Thread):
    """Our own hourly rollup for servers without continuous queries (2.x/3.x): every hour, the last hours."""

    def __init__(self, store: InfluxStore, every_s: float = 3600.0, lookback_h: int = 2) -> None:
        super().__init__(name="influx-downsample", daemon=True)
        self.store, self.every_s, self.lookback_h = store, every_s, lookback_h
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.time()
            hour = now - now % 3600
            try:
                self.store.downsample(hour - self.lookback_h * 3600, hour)
            except StoreError as exc:
                log.warning("downsampling failed, will retry: %s", exc)
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()


_DURATION = re.compile(r"INF|(\d+(w|d|h|m|s|ms|u|µ|ns))+")


def _hours(duration: str) -> float:
    """An InfluxDB duration ('400d', '9600h0m0s', '0s' = INF) in hours, to compare retention settings."""
    if duration in ("INF", "0s", "0"):
        return float("inf")
    unit_h = {"w": 168, "d": 24, "h": 1, "m": 1 / 60, "s": 1 / 3600, "ms": 1 / 3.6e6, "u": 1 / 3.6e9,
              "µ": 1 / 3.6e9, "ns": 1 / 3.6e12}
    return sum(int(n) * unit_h[u] for n, u in re.findall(r"(\d+)(ms|ns|u|µ|w|d|h|m|s)", duration))


def _lp_key(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _ms(ts: float) -> int:
    if not math.isfinite(ts):
        raise ValueError(f"time must be finite, got {ts}")
    return math.floor(ts * 1000 + 0.5)  # as stored: half a millisecond rounds up


def _series_rows(result: dict[str, Any]) -> Iterable[tuple[str, float, Any]]:
    """(point, time ms, first value column) for every non-null row of a GROUP BY "point" result."""
    for s in result.get("series", []):
        point = s.get("tags", {}).get("point", "")
        for row in s.get("values", []):
            if row[1] is not None:
                yield point, row[0], row[1]


def _row_reading(point: str, row: list[Any]) -> Reading:
    t, value, text, quality = row[0], row[1], row[2], row[3]
    return Reading(point, t / 1000.0, text if text is not None else (float(value) if value is not None else None),
                   Quality(quality) if quality else Quality.GOOD)


def _ssl_reason(exc: BaseException) -> str:
    """The OpenSSL reason (e.g. 'certificate verify failed: self-signed certificate'), without the URL."""
    import re

    m = re.search(r"\[SSL[^\]]*\] ([^(')]+)", str(exc))
    return m.group(1).strip() if m else type(exc).__name__


def _server_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        msg = body.get("error") or body.get("message") or str(body)
    except ValueError:
        msg = resp.text
    return str(msg).strip()[:500]


def _json_version(resp: requests.Response) -> str | None:
    try:
        return str(resp.json().get("version")) if resp.content else None
    except ValueError:
        return None
