"""The embedded telemetry store: one SQLite file in WAL mode, the default when no InfluxDB is configured.

WAL lets one writer process (the collector's buffer drain) and several reader processes (dashboard, API,
rules replay) share the file without blocking each other. Readings are keyed by (series, time in ms), so
writing the same reading twice overwrites it with the same values: a replayed buffer batch changes nothing.
Aggregates run in SQL (GROUP BY a local-time bucket expression, LAG() for counter deltas), never in Python.

Schema (see docs/telemetry.md):
  series(id, point, building)                            one row per point key
  readings(series, ts_ms, value, text, quality)          PRIMARY KEY (series, ts_ms), WITHOUT ROWID
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path

from telemetry.reading import Quality, Reading
from telemetry.store import Agg, StoreError, StoreRejected, StoreUnavailable
from telemetry.windows import offset_segments, utc_of_local, window_start

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY,
  point TEXT NOT NULL UNIQUE,
  building TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS series_building ON series(building);
CREATE TABLE IF NOT EXISTS readings (
  series INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  value REAL,
  text TEXT,
  quality TEXT NOT NULL,
  PRIMARY KEY (series, ts_ms)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = "1"
INSERT = "INSERT OR REPLACE INTO readings (series, ts_ms, value, text, quality) VALUES (?, ?, ?, ?, ?)"
GOOD = "quality = 'good' AND value IS NOT NULL"
_QUALITIES = frozenset(q.value for q in Quality)

_series_time = itemgetter(0, 1)

_SQL_AGG = {Agg.MEAN: "AVG(value)", Agg.MIN: "MIN(value)", Agg.MAX: "MAX(value)", Agg.SUM: "SUM(value)",
            Agg.COUNT: "COUNT(value)"}


class EmbeddedStore:
    """Telemetry in one SQLite file (WAL). Thread-safe within a process; one writing process at a time."""

    kind = "embedded"
    # every commit rewrites one leaf page per series it touches: bigger batches cost less per reading
    preferred_batch = 50_000

    def __init__(self, path: str | Path, readonly: bool = False, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreUnavailable(f"embedded store {self.path} does not exist yet; "
                                           "it is created when the first reading is written")
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout_s,
                                           check_same_thread=False, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False,
                                           isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a crash of this process loses nothing; a power cut may lose the last
                # commits, which the durable buffer still holds (it deletes only after we return).
                self._db.execute("PRAGMA synchronous=NORMAL")
                # a big cache and rarer checkpoints: each commit rewrites the leaf page of every series it touches,
                # so fewer, larger checkpoints and sorted inserts are what make 50,000+ readings/s possible
                self._db.execute("PRAGMA cache_size=-65536")
                self._db.execute("PRAGMA wal_autocheckpoint=20000")
                self._db.executescript(SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded store {self.path}: {exc}; check the path and free disk space") from None
        self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        self._lock = threading.RLock()
        self._ids: dict[str, int] = {}

    # --- info --------------------------------------------------------------------------------------------
    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def ping(self) -> str:
        """Check the file answers a query; return the version (raises StoreUnavailable)."""
        with self._lock:
            try:
                self._db.execute("SELECT 1 FROM series LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from None
        return self.version()

    def describe(self) -> str:
        return f"embedded SQLite store at {self.path}"

    # --- writing -------------------------------------------------------------------------------------------
    def _series_id(self, point: str) -> int:
        sid = self._ids.get(point)
        if sid is None:
            row = self._db.execute("SELECT id FROM series WHERE point = ?", (point,)).fetchone()
            if row is None:
                cur = self._db.execute("INSERT INTO series (point, building) VALUES (?, ?)",
                                       (point, point.partition("/")[0]))
                sid = int(cur.lastrowid)  # type: ignore[arg-type]
            else:
                sid = int(row[0])
            self._ids[point] = sid
        return sid

    def write(self, readings: Sequence[Reading]) -> None:
        """Store a batch in one transaction; returns once SQLite committed it."""
        self.write_rows([(r.point, r.ts, r.value, r.quality) for r in readings])  # Quality is a str

    def write_rows(self, rows: Sequence[tuple[str, float, float | str | None, str]]) -> None:
        """write() for (point, ts, value, quality) tuples: the durable buffer's fast path (no Reading objects)."""
        if self.readonly:
            raise StoreRejected(f"embedded store {self.path} was opened read-only")
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    ids = self._ids
                    out = []
                    append = out.append
                    for point, ts, v, quality in rows:
                        sid = ids.get(point)
                        if sid is None:
                            sid = self._series_id(point)
                        if quality not in _QUALITIES:
                            raise ValueError(f"unknown quality {quality!r} for {point}")
                        if v is None:
                            append((sid, int(ts * 1000 + 0.5), None, None, quality))
                        elif v.__class__ is float:  # NaN and inf are stored without a value, as in InfluxDB
                            append((sid, int(ts * 1000 + 0.5), v if v - v == 0.0 else None, None, quality))
                        elif isinstance(v, str):
                            append((sid, int(ts * 1000 + 0.5), None, v, quality))
                        else:
                            f = float(v)
                            append((sid, int(ts * 1000 + 0.5), f if math.isfinite(f) else None, None, quality))
                    out.sort(key=_series_time)  # B-tree order: each series' new rows land on one leaf page
                    self._db.executemany(INSERT, out)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    self._ids.clear()  # series rows created in the rolled-back transaction are gone
                    raise
            except (sqlite3.OperationalError, OSError) as exc:
                raise StoreUnavailable(f"embedded store {self.path}: {exc}; will retry") from None
            except (sqlite3.Error, TypeError, ValueError, AttributeError) as exc:
                raise StoreRejected(f"embedded store {self.path} rejected the batch: {exc}") from None

    # --- reading -------------------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"embedded store {self.path}: query failed: {exc}") from None

    @staticmethod
    def _reading(point: str, ts_ms: int, value: float | None, text: str | None, quality: str) -> Reading:
        return Reading(point, ts_ms / 1000.0, text if text is not None else value, Quality(quality))

    def latest(self, points: Sequence[str] | None = None, building: str | None = None) -> dict[str, Reading]:
        sql = ("SELECT s.point, r.ts_ms, r.value, r.text, r.quality FROM series s JOIN readings r "
               "ON r.series = s.id AND r.ts_ms = (SELECT MAX(ts_ms) FROM readings WHERE series = s.id)")
        where, params = self._series_filter(points, building)
        rows = self._query(f"{sql} {where}", params)
        return {row[0]: self._reading(*row) for row in rows}

    @staticmethod
    def _series_filter(points: Sequence[str] | None, building: str | None,
                       alias: str = "s") -> tuple[str, list[object]]:
        clauses, params = [], []
        if points is not None:
            clauses.append(f"{alias}.point IN ({','.join('?' * len(points))})")
            params.extend(points)
        if building is not None:
            clauses.append(f"{alias}.building = ?")
            params.append(building)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def raw(self, point: str, start: float, end: float, limit: int | None = None) -> list[Reading]:
        sql = ("SELECT s.point, r.ts_ms, r.value, r.text, r.quality FROM readings r JOIN series s ON s.id = r.series "
               "WHERE s.point = ? AND r.ts_ms >= ? AND r.ts_ms < ? ORDER BY r.ts_ms")
        params: list[object] = [point, _ms(start), _ms(end)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._reading(*row) for row in self._query(sql, params)]

    def aggregate(self, points: Sequence[str], start: float, end: float, window_s: int, agg: Agg,
                  tz: str = "UTC") -> dict[str, list[tuple[float, float]]]:
        """Per point, (UTC start of the local-time window, value) for each non-empty window in [start, end)."""
        agg = Agg(agg)
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        out: dict[str, list[tuple[float, float]]] = {p: [] for p in points}
        if not points:
            return out
        w_ms = int(window_s) * 1000
        # DELTA reads one window before the first so its first reading has a predecessor (as InfluxStore does)
        first_window = window_start(start, window_s, tz)
        lookback_start = first_window - window_s if agg is Agg.DELTA else start
        segs = offset_segments(tz, lookback_start, end)
        off = _offset_sql(segs)
        bucket = f"((ts_ms + {off}) / {w_ms})"
        marks = ",".join("?" * len(points))
        ids = f"(SELECT id FROM series WHERE point IN ({marks}))"
        if agg is Agg.DELTA:
            # increase between consecutive good readings, attributed to the later one's window; a drop means
            # the counter was reset (meter replaced, rollover): the new value is the increase since the reset.
            sql = (f"WITH r AS (SELECT series, ts_ms, value, LAG(value) OVER (PARTITION BY series ORDER BY ts_ms) "
                   f"AS prev FROM readings WHERE series IN {ids} AND ts_ms >= ? AND ts_ms < ? AND {GOOD}) "
                   f"SELECT series, {bucket} AS b, SUM(CASE WHEN value >= prev THEN value - prev ELSE value END) "
                   f"FROM r WHERE prev IS NOT NULL AND ts_ms >= ? GROUP BY series, b")
            params: list[object] = [*points, _ms(lookback_start), _ms(end), _ms(first_window)]
        elif agg is Agg.LAST:
            # SQLite documents that bare columns take the values of the row holding MAX()
            sql = (f"SELECT series, {bucket} AS b, value, MAX(ts_ms) FROM readings WHERE series IN {ids} "
                   f"AND ts_ms >= ? AND ts_ms < ? AND {GOOD} GROUP BY series, b")
            params = [*points, _ms(start), _ms(end)]
        else:
            sql = (f"SELECT series, {bucket} AS b, {_SQL_AGG[agg]} FROM readings WHERE series IN {ids} "
                   f"AND ts_ms >= ? AND ts_ms < ? AND {GOOD} GROUP BY series, b")
            params = [*points, _ms(start), _ms(end)]
        rows = self._query(sql, params)
        names = self._names_by_id(points)
        for row in rows:
            sid, b, v = row[0], row[1], row[2]
            if v is None:
                continue
            local_start = b * window_s
            out[names[sid]].append((utc_of_local(local_start, segs, tz), float(v)))
        for series in out.values():
            series.sort()
        return out

    def _names_by_id(self, points: Sequence[str]) -> dict[int, str]:
        marks = ",".join("?" * len(points))
        return {row[0]: row[1] for row in self._query(f"SELECT id, point FROM series WHERE point IN ({marks})",
                                                      list(points))}

    def series(self, building: str | None = None) -> list[str]:
        sql = "SELECT point FROM series s WHERE EXISTS (SELECT 1 FROM readings r WHERE r.series = s.id)"
        params: list[object] = []
        if building is not None:
            sql += " AND s.building = ?"
            params.append(building)
        return sorted(row[0] for row in self._query(sql, params))

    def count(self, points: Sequence[str] | None = None, start: float | None = None,
              end: float | None = None) -> int:
        clauses, params = [], []
        if points is not None:
            clauses.append(f"series IN (SELECT id FROM series WHERE point IN ({','.join('?' * len(points))}))")
            params.extend(points)
        if start is not None:
            clauses.append("ts_ms >= ?")
            params.append(_ms(start))
        if end is not None:
            clauses.append("ts_ms < ?")
            params.append(_ms(end))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return int(self._query(f"SELECT COUNT(*) FROM readings {where}", params)[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ms(ts: float) -> int:
    if not math.isfinite(ts):
        raise ValueError(f"time must be finite, got {ts}")
    return math.floor(ts * 1000 + 0.5)  # as stored: half a millisecond rounds up


def _offset_sql(segs: list[tuple[float, int]]) -> str:
    """SQL expression for the UTC offset (ms) in force at ts_ms, as literals computed here (no user text)."""
    if len(segs) == 1:
        return str(segs[0][1] * 1000)
    cases = " ".join(f"WHEN ts_ms < {round(segs[i + 1][0] * 1000)} THEN {segs[i][1] * 1000}"
                     for i in range(len(segs) - 1))
    return f"(CASE {cases} ELSE {segs[-1][1] * 1000} END)"
