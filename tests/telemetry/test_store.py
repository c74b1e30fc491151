"""One suite, every store: write, latest, raw, aggregates (with a counter reset), local-midnight days, strings."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from telemetry.reading import Quality, Reading
from telemetry.store import Agg, Store
from tests.telemetry.helpers import SH, T0

H = 3600.0


def test_write_latest_count_series(store: Store) -> None:
    readings = [Reading(f"b1/p{i}", T0 + k * 60, float(i * 10 + k)) for i in range(3) for k in range(5)]
    readings += [Reading("b2/q", T0 + 30, 7.5)]
    store.write(readings)
    assert store.count() == 16
    assert store.count(["b1/p0", "b2/q"]) == 6
    assert store.count(["b1/p1"], start=T0 + 60, end=T0 + 180) == 2
    last = store.latest(building="b1")
    assert set(last) == {"b1/p0", "b1/p1", "b1/p2"}
    assert last["b1/p2"] == Reading("b1/p2", T0 + 240, 24.0, Quality.GOOD)
    assert store.latest(points=["b2/q"]) == {"b2/q": Reading("b2/q", T0 + 30, 7.5)}
    assert store.series("b1") == ["b1/p0", "b1/p1", "b1/p2"]
    assert store.series() == ["b1/p0", "b1/p1", "b1/p2", "b2/q"]
    # the same reading written again overwrites itself: a replayed buffer batch changes nothing
    store.write(readings[:5])
    assert store.count() == 16


def test_raw_range_is_half_open_and_ordered(store: Store) -> None:
    store.write([Reading("b1/t", T0 + k * 10.5, 20.0 + k / 4) for k in reversed(range(20))])
    got = store.raw("b1/t", T0 + 21, T0 + 105)
    assert [r.ts for r in got] == [T0 + k * 10.5 for k in range(2, 10)]
    assert [r.value for r in got] == [20.0 + k / 4 for k in range(2, 10)]
    assert len(store.raw("b1/t", T0, T0 + 1000, limit=3)) == 3
    assert store.raw("b1/none", T0, T0 + 1000) == []


def test_millisecond_precision(store: Store) -> None:
    store.write([Reading("b1/ms", T0 + 0.123, 1.0), Reading("b1/ms", T0 + 0.124, 2.0)])
    assert [r.ts for r in store.raw("b1/ms", T0, T0 + 1)] == [pytest.approx(T0 + 0.123, abs=1e-6),
                                                             pytest.approx(T0 + 0.124, abs=1e-6)]


def test_strings_and_bad_quality_round_trip(store: Store) -> None:
    readings = [
        Reading("b1/mode", T0, "occupied"),
        Reading("b1/mode", T0 + 60, 'say "hi", a=b \\ c 中文\nline two'),
        Reading("b1/temp", T0, 21.5),
        Reading("b1/temp", T0 + 60, 999.0, Quality.OUT_OF_RANGE),
        Reading("b1/temp", T0 + 120, None, Quality.COMM_FAILURE),
        Reading("b1/temp", T0 + 180, 22.5, Quality.STALE),
    ]
    store.write(readings)
    assert store.raw("b1/mode", T0, T0 + H) == readings[:2]
    assert store.raw("b1/temp", T0, T0 + H) == readings[2:]
    assert store.latest(["b1/temp"])["b1/temp"] == readings[-1]
    # aggregates use good readings only: a 999 out-of-range value must not pollute the mean
    mean = store.aggregate(["b1/temp"], T0, T0 + H, 3600, Agg.MEAN)
    assert mean == {"b1/temp": [(T0, 21.5)]}
    assert store.count(["b1/temp"]) == 4


def _hourly_data() -> list[Reading]:
    # two points; 4 readings per hour over 3 hours: values 0..11 and 100 + 2k
    out = []
    for k in range(12):
        out.append(Reading("b1/a", T0 + k * 900, float(k)))
        out.append(Reading("b1/b", T0 + k * 900, 100.0 + 2 * k))
    return out


@pytest.mark.parametrize(("agg", "expected_a"), [
    (Agg.MEAN, [1.5, 5.5, 9.5]),
    (Agg.MIN, [0.0, 4.0, 8.0]),
    (Agg.MAX, [3.0, 7.0, 11.0]),
    (Agg.SUM, [6.0, 22.0, 38.0]),
    (Agg.LAST, [3.0, 7.0, 11.0]),
    (Agg.COUNT, [4.0, 4.0, 4.0]),
])
def test_aggregates(store: Store, agg: Agg, expected_a: list[float]) -> None:
    store.write(_hourly_data())
    got = store.aggregate(["b1/a", "b1/b", "b1/nodata"], T0, T0 + 3 * H, 3600, agg)
    assert got["b1/a"] == [(T0 + i * H, pytest.approx(v)) for i, v in enumerate(expected_a)]
    assert len(got["b1/b"]) == 3
    assert got["b1/nodata"] == []


def test_aggregate_skips_empty_windows_and_aligns_unaligned_start(store: Store) -> None:
    store.write([Reading("b1/a", T0 + 10, 1.0), Reading("b1/a", T0 + 3 * H + 10, 3.0)])
    got = store.aggregate(["b1/a"], T0 + 5, T0 + 5 * H, 3600, Agg.MAX)
    assert got == {"b1/a": [(T0, 1.0), (T0 + 3 * H, 3.0)]}


def test_delta_handles_counter_reset(store: Store) -> None:
    # energy counter every 15 min; reset to 0 (meter replaced) between 01:30 and 01:45
    values = [100, 110, 125, 130,  # 00:00..00:45
              140, 150, 160, 2,    # 01:00..01:45 (reset: 160 -> 2 means 2 kWh since the reset)
              12, 22, 32, 42]      # 02:00..02:45
    store.write([Reading("b1/kwh", T0 + k * 900, float(v)) for k, v in enumerate(values)])
    # and a bad-quality spike that must not count
    store.write([Reading("b1/kwh", T0 + 2 * H + 60, 99999.0, Quality.OUT_OF_RANGE)])
    got = store.aggregate(["b1/kwh"], T0, T0 + 3 * H, 3600, Agg.DELTA)
    # hour 0: 110-100 + 125-110 + 130-125 = 30 (the 00:00 reading has no predecessor in range)
    # hour 1: 140-130 + 10 + 10 + 2 = 32; hour 2: 12-2 + 10 + 10 + 10 = 40
    assert got == {"b1/kwh": [(T0, pytest.approx(30.0)), (T0 + H, pytest.approx(32.0)),
                              (T0 + 2 * H, pytest.approx(40.0))]}
    # a window's lookback picks up the reading just before start: 01:00..03:00 counts 140-130 too
    later = store.aggregate(["b1/kwh"], T0 + H, T0 + 3 * H, 3600, Agg.DELTA)
    assert later["b1/kwh"][0] == (T0 + H, pytest.approx(32.0))


def test_daily_windows_start_at_local_midnight(store: Store) -> None:
    # hourly readings for 3 local days; the value is the local day number (1, 2, 3)
    readings = [Reading("b1/p", T0 + h * H, float(h // 24 + 1)) for h in range(72)]
    store.write(readings)
    got = store.aggregate(["b1/p"], T0, T0 + 72 * H, 86400, Agg.MEAN, tz="Asia/Shanghai")
    assert got == {"b1/p": [(T0, 1.0), (T0 + 86400, 2.0), (T0 + 2 * 86400, 3.0)]}
    starts = [dt.datetime.fromtimestamp(t, SH) for t, _ in got["b1/p"]]
    assert all((s.hour, s.minute) == (0, 0) for s in starts)
    # in UTC the same data straddles days: windows start at 00:00 UTC = 08:00 local
    utc = store.aggregate(["b1/p"], T0, T0 + 72 * H, 86400, Agg.COUNT, tz="UTC")
    assert [v for _, v in utc["b1/p"]] == [8.0, 24.0, 24.0, 16.0]
    assert all(math.isclose(t % 86400, 0) for t, _ in utc["b1/p"])


def test_daily_windows_across_a_dst_change(store: Store) -> None:
    """Europe/Berlin: the day clocks change has 23 or 25 hours; windows still start at local midnight."""
    import time

    from telemetry.windows import local_midnight, offset_segments

    now = time.time()
    change = offset_segments("Europe/Berlin", now - 300 * 86400, now - 86400)[1][0]  # a change in the last 300 days
    first = local_midnight(change - 86400, "Europe/Berlin")
    hours = int((local_midnight(change + 2 * 86400, "Europe/Berlin") - first) // 3600)
    store.write([Reading("b1/dst", first + h * H + 60, 1.0) for h in range(hours)])
    got = store.aggregate(["b1/dst"], first, first + hours * H, 86400, Agg.COUNT, tz="Europe/Berlin")["b1/dst"]
    berlin = ZoneInfo("Europe/Berlin")
    assert [(dt.datetime.fromtimestamp(t, berlin).hour, dt.datetime.fromtimestamp(t, berlin).minute)
            for t, _ in got] == [(0, 0)] * 3
    assert sorted(v for _, v in got) in ([23.0, 24.0, 24.0], [24.0, 24.0, 25.0])
    assert sum(v for _, v in got) == hours


def test_delta_of_several_counters_only_one_reset(store: Store) -> None:
    steady = [Reading("b1/steady", T0 + k * 900, 500.0 + 3 * k) for k in range(8)]
    reset = [Reading("b1/reset", T0 + k * 900, v) for k, v in enumerate([50.0, 60, 70, 80, 1, 2, 3, 4])]
    store.write(steady + reset)
    got = store.aggregate(["b1/steady", "b1/reset"], T0, T0 + 2 * H, 3600, Agg.DELTA)
    assert got["b1/steady"] == [(T0, pytest.approx(9.0)), (T0 + H, pytest.approx(12.0))]
    assert got["b1/reset"] == [(T0, pytest.approx(30.0)), (T0 + H, pytest.approx(1.0 + 3.0))]


def test_nan_and_infinity_are_stored_without_a_value(store: Store) -> None:
    store.write([Reading("b1/n", T0, float("nan"), Quality.BAD), Reading("b1/n", T0 + 1, float("inf"), Quality.BAD),
                 Reading("b1/n", T0 + 2, 3.0)])
    assert [(r.value, r.quality) for r in store.raw("b1/n", T0, T0 + 10)] == [
        (None, Quality.BAD), (None, Quality.BAD), (3.0, Quality.GOOD)]
