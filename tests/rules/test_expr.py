"""The condition language: whitelist parsing, three-valued logic, windows and stateful functions."""

from __future__ import annotations

import numpy as np
import pytest

from rules.expr import NAN, ExprError, Frame, PointView, compile_expr, parse_duration

KNOWN = {"a", "b", "c", "x", "tol"}


def run(text: str, names: dict[str, list[float]], now: float = 0.0, slots: list | None = None,
        compiled=None) -> np.ndarray:
    c = compiled or compile_expr(text, KNOWN, {"x"})
    n = len(next(iter(names.values())))
    if slots is None:
        slots = [f(n, 60.0) for f in c.slot_factories]
    arrs = {k: np.array(v, float) for k, v in names.items()}
    pts = {"x": PointView(arrs.get("x", np.full(n, NAN)), arrs.get("x", np.full(n, NAN)),
                          np.full(n, 1.0), np.full(n, 1.0), np.full(n, 1.0), np.full(n, 30.0),
                          np.zeros(n, np.int8))}
    with np.errstate(all="ignore"):
        return np.broadcast_to(c.fn(Frame(n, now, 60.0, arrs, pts, slots)), (n,))


@pytest.mark.parametrize("text, reason", [
    ("a.__class__", "attribute access"),
    ("a[0]", "subscripts"),
    ("(lambda: 1)()", "only calls of the named functions"),
    ("[v for v in a]", "comprehensions"),
    ("open('x')", "unknown function 'open'"),
    ("__import__('os')", "unknown function '__import__'"),
    ("a ** 2", "operator Pow is not allowed"),
    ("zzz > 1", "unknown name 'zzz'"),
    ("max(a, key=b)", "no keyword arguments"),
    ("mean(a, b)", "window must be a literal duration"),
    ("mean(a, '5 parsecs')", "not a duration"),
    ("a >", "syntax error"),
    ("'text' > 1", "is not a number here"),
    ("age(a)", "takes a point name"),
    ("a is b", "comparison Is is not allowed"),
    ("(a := 1)", ":="),
])
def test_rejects_everything_outside_the_whitelist(text: str, reason: str) -> None:
    with pytest.raises(ExprError) as exc:
        compile_expr(text, KNOWN, {"x"})
    assert reason in str(exc.value)


def test_error_names_line_and_column() -> None:
    with pytest.raises(ExprError) as exc:
        compile_expr("a > 1 and\nfoo(b)", KNOWN, set())
    assert exc.value.line == 2 and exc.value.col == 1
    with pytest.raises(ExprError) as exc:
        compile_expr("a + zzz", KNOWN, set())
    assert exc.value.line == 1 and exc.value.col == 5


def test_arithmetic_and_kleene_logic() -> None:
    r = run("a + b * 2 > 5", {"a": [1, 3, NAN], "b": [1, 2, 9]})
    assert r[0] == 0 and r[1] == 1 and np.isnan(r[2])
    # false and unknown = false; true or unknown = true; true and unknown = unknown
    r = run("a > 0 and b > 0", {"a": [-1, 1, NAN], "b": [NAN, NAN, NAN]})
    assert r[0] == 0 and np.isnan(r[1]) and np.isnan(r[2])
    r = run("a > 0 or b > 0", {"a": [1, -1, NAN], "b": [NAN, NAN, 1]})
    assert r[0] == 1 and np.isnan(r[1]) and r[2] == 1
    r = run("not (a > 0)", {"a": [1, -1, NAN]})
    assert r[0] == 0 and r[1] == 1 and np.isnan(r[2])
    r = run("1 < a < 3", {"a": [2, 3, NAN]})
    assert r[0] == 1 and r[1] == 0 and np.isnan(r[2])
    r = run("a / b", {"a": [1, 1], "b": [0, 2]})
    assert np.isnan(r[0]) and r[1] == 0.5  # division by zero is unknown, never inf
    r = run("max(a, b, 3) - min(abs(a), b)", {"a": [-5, 1], "b": [2, NAN]})
    assert r[0] == 3 - 2 and np.isnan(r[1])
    r = run("b if a > 0 else -b", {"a": [1, -1, NAN], "b": [2, 2, 2]})
    assert r[0] == 2 and r[1] == -2 and np.isnan(r[2])
    r = run("known(a)", {"a": [1, NAN]})
    assert list(r) == [1, 0]


def test_rolling_windows_over_ticks() -> None:
    c = compile_expr("mean(a, '5m')", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    out = [run("", {"a": [float(v)]}, now=60.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(range(10))]
    assert np.isnan(out[0])  # needs half the window covered
    assert out[9] == pytest.approx(np.mean([5, 6, 7, 8, 9]))
    for text, want in (("rmin(a, '5m')", 5), ("rmax(a, '5m')", 9), ("delta(a, '5m')", 4), ("rate(a, '5m')", 48)):
        c = compile_expr(text, KNOWN, set())
        slots = [f(1, 60.0) for f in c.slot_factories]
        vals = [run("", {"a": [float(v)]}, now=60.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(range(10))]
        assert vals[-1] == pytest.approx(want), text


def test_unknown_samples_do_not_enter_a_window() -> None:
    c = compile_expr("mean(a, '10m')", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    seq = [10, NAN, 20, NAN, 30, NAN, 40, NAN, 50, NAN]
    out = [run("", {"a": [v]}, now=60.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(seq)]
    assert out[-1] == pytest.approx(30.0)


def test_mean_when_needs_half_its_window_observed_whatever_the_condition() -> None:
    """A 1-hour mean of `a` while `c` holds: the condition holds in 1 sample of 4, yet the mean is known once
    half the hour has been observed, and not before (a weekly after-hours mean after one day is no verdict)."""
    c = compile_expr("mean_when(a, c > 0, '1h')", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    out = [run("", {"a": [float(i)], "c": [float(i % 4 == 0)]}, now=60.0 * i, slots=slots, compiled=c)[0]
           for i in range(40)]
    assert all(np.isnan(v) for v in out[:29])
    assert out[39] == pytest.approx(np.mean([i for i in range(40) if i % 4 == 0]))


def test_changes_unchanged_for_hours_since_lag() -> None:
    c = compile_expr("changes(a, '1h')", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    seq = [1, 2, 1, 2, 2, 2, 3] + [3] * 30  # a window needs half its span covered
    out = [run("", {"a": [float(v)]}, now=60.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(seq)]
    assert out[-1] == 4
    c = compile_expr("unchanged_for(a, tol)", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    seq = [1.0, 1.005, 1.002, 2.0, 2.0, 2.0]
    out = [run("", {"a": [v], "tol": [0.01]}, now=60.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(seq)]
    assert out[2] == 120 and out[3] == 0 and out[5] == 120
    c = compile_expr("hours_since(a > 5)", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    seq = [9, 1, 1, 1]
    out = [run("", {"a": [float(v)]}, now=1800.0 * i, slots=slots, compiled=c)[0] for i, v in enumerate(seq)]
    assert out == [0, 0.5, 1.0, 1.5]
    c = compile_expr("lag(a, '1h')", KNOWN, set())
    slots = [f(1, 60.0) for f in c.slot_factories]
    out = [run("", {"a": [float(i)]}, now=60.0 * i, slots=slots, compiled=c)[0] for i in range(100)]
    assert out[99] == pytest.approx(39.0, abs=1.5)  # lag buckets are 1/24 of the lag wide


def test_durations() -> None:
    assert parse_duration("5m") == 300 and parse_duration("2h") == 7200 and parse_duration(90) == 90
    assert parse_duration("1d") == 86400 and parse_duration("1w") == 604800
    with pytest.raises(ValueError):
        parse_duration("soon")
