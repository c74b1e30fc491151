"""The condition language: a safe expression tree, compiled to vectorised closures.

A condition is written in a small, Python-looking language (``sat_avg + eps < min(rat, oat)``). It is parsed
with ``ast.parse(mode="eval")`` and then walked by a strict whitelist: numbers, names the rule declares,
arithmetic (+ - * /), comparisons, ``and``/``or``/``not``, ``a if c else b`` and calls to the functions in
FUNCTIONS. Anything else (attribute access, subscripts, lambdas, comprehensions, keywords, unknown functions
or names) is an ExprError naming the column. User text is never passed to ``eval`` or ``compile``.

Evaluation is vectorised: one closure per rule evaluates every equipment the rule is bound to at once, on
numpy float arrays. Truth values are 1.0 / 0.0, and NaN means *unknown* (missing, stale or bad input):
arithmetic and comparisons with an unknown are unknown, ``and``/``or`` follow Kleene logic (false and
unknown = false, true or unknown = true). Functions that need history (rolling windows, ``unchanged_for``,
``hours_since``) get a state slot per call site, allocated per rule instance.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAN = float("nan")
QUALITY_CODES: dict[str, int] = {
    "good": 0, "stale": 1, "comm-failure": 2, "out-of-range": 3, "bad-config": 4, "bad": 5,
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$")
_UNIT_S = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class ExprError(ValueError):
    """A condition that is not valid; ``col`` is the 1-based column, ``line`` the 1-based line in the text."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        self.line = line
        self.col = col
        self.reason = message
        super().__init__(f"{message} (line {line}, column {col} of the expression)")


def parse_duration(text: str | float | int) -> float:
    """'5m' -> 300.0, '24h' -> 86400.0, 90 -> 90.0; raise ValueError for anything else."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text} is negative")
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90, '90s', '5m', '2h', '1d', '1w'")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


# --- the evaluation frame -----------------------------------------------------------------------------------


@dataclass
class PointView:
    """What the engine knows about the points a variable is bound to (one row per binding)."""

    value: np.ndarray  # current good value, NaN when unknown
    raw: np.ndarray  # last value whatever its quality, NaN if none
    prev: np.ndarray  # previous good sample
    prev2: np.ndarray  # the one before
    prev3: np.ndarray  # and the one before that (a two-sample spike's level before it)
    age: np.ndarray  # seconds since the last good reading
    quality: np.ndarray  # quality code of the last reading (QUALITY_CODES)
    lo: np.ndarray | None = None  # declared range, NaN when the site file gives none
    hi: np.ndarray | None = None


@dataclass
class Frame:
    """One evaluation of one rule over all its bindings at one event time."""

    n: int
    now: float
    step: float
    names: dict[str, np.ndarray]
    points: dict[str, PointView]
    slots: list[Any]


Fn = Callable[[Frame], np.ndarray]


# --- three-valued helpers -------------------------------------------------------------------------------------
# Truth values are floats: 1.0 true, 0.0 false, NaN unknown. The engine evaluates inside
# ``np.errstate(all="ignore")``, so these helpers do not set it themselves (it is slow per call).


def truth(a: np.ndarray | float) -> np.ndarray:
    """Numbers to truth values: nonzero -> 1, zero -> 0, NaN stays unknown."""
    return (a != 0) + a * 0.0


def _fold(comb: Callable[[np.ndarray, np.ndarray], np.ndarray],
          fns: list[Callable[[Frame], np.ndarray]]) -> Callable[[Frame], np.ndarray]:
    """One compiled function combining several left to right (`a and b and c`, a chained comparison)."""
    def fold(f: Frame) -> np.ndarray:
        acc = fns[0](f)
        for fn in fns[1:]:
            acc = comb(acc, fn(f))
        return acc
    return fold


def _and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kleene and of two truth values: false wins, then unknown."""
    return np.where((a == 0) | (b == 0), 0.0, a * b)


def _or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kleene or of two truth values: true wins, then unknown."""
    return np.where((a == 1) | (b == 1), 1.0, a + b)


_CMP = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
    ast.GtE: np.greater_equal, ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
_BIN = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}


# --- windows ----------------------------------------------------------------------------------------------------

MAX_BUCKETS = 30  # a window is exact to 1/30 of its length; memory is n x 30 per window
LAG_BUCKETS = 24


class Window:
    """Per-binding rolling window of a sampled expression, kept in at most MAX_BUCKETS time buckets.

    At every evaluation the argument's value is added to the current bucket. A window of W seconds is the
    last ``k`` buckets of width W/k (k = W/step, capped at MAX_BUCKETS), so it is exact to one bucket.
    A window needs half its span covered by known samples, else it is unknown (no verdict on too little data).
    A conditional window (``mean_when``) counts coverage by the samples where its argument was known, whether
    or not the condition held ("seen"): a 7-day after-hours mean is unknown after one day of data.
    Values are sampled once per engine step: a mean is therefore time-weighted, whatever the poll rate.
    """

    def __init__(self, n: int, window_s: float, step_s: float, need: frozenset[str], min_coverage: float = 0.5) -> None:
        self.k = max(1, min(MAX_BUCKETS, math.ceil(window_s / step_s - 1e-9)))
        self.width = window_s / self.k
        self.window_s = window_s
        self.expected = window_s / step_s
        self.min_coverage = min_coverage
        self.cur: int | None = None  # current absolute bucket number
        self._n = np.zeros(n)  # samples in the window per binding
        self.sum = np.zeros((n, self.k)) if "sum" in need else None
        self.cnt = np.zeros((n, self.k), np.float32)  # counts: exact in float32, half the memory
        self.mn = np.full((n, self.k), np.inf) if "min" in need else None
        self.mx = np.full((n, self.k), -np.inf) if "max" in need else None
        self.first = np.full((n, self.k), NAN) if "first" in need else None
        self.seen = np.zeros((n, self.k), np.float32) if "seen" in need else None

    def _reset(self, cols: np.ndarray | slice) -> None:
        self.cnt[:, cols] = 0
        if self.sum is not None:
            self.sum[:, cols] = 0
        if self.mn is not None:
            self.mn[:, cols] = np.inf
        if self.mx is not None:
            self.mx[:, cols] = -np.inf
        if self.first is not None:
            self.first[:, cols] = NAN
        if self.seen is not None:
            self.seen[:, cols] = 0

    def push(self, now: float, x: np.ndarray, seen: np.ndarray | None = None) -> None:
        """Add this step's values (NaN: unknown) to the current bucket; ``seen`` marks coverage apart from x."""
        b = int(now // self.width)
        cur = self.cur
        if cur is None or b - cur >= self.k:
            self._reset(slice(None))
        elif b == cur + 1:
            self._reset(b % self.k)  # the common case: one new bucket
        elif b > cur:
            self._reset(np.arange(cur + 1, b + 1) % self.k)
        self.cur = b if cur is None else max(cur, b)
        c = b % self.k
        ok = x == x  # not NaN
        self.cnt[:, c] += ok
        if self.sum is not None:
            self.sum[:, c] += np.where(ok, x, 0.0)
        if self.mn is not None:
            self.mn[:, c] = np.fmin(self.mn[:, c], x)  # fmin/fmax ignore NaN
        if self.mx is not None:
            self.mx[:, c] = np.fmax(self.mx[:, c], x)
        if self.first is not None:
            col = self.first[:, c]
            self.first[:, c] = np.where(col != col, x, col)
        if self.seen is not None and seen is not None:
            self.seen[:, c] += seen
        self._n = self.cnt.sum(axis=1)

    def covered(self) -> np.ndarray:
        return self._n >= max(1.0, self.min_coverage * self.expected)

    def seen_covered(self) -> np.ndarray:
        """Enough of the window observed (``seen`` samples), whatever the condition of a ``mean_when``."""
        return self.seen.sum(axis=1) >= max(1.0, self.min_coverage * self.expected)

    def mean(self) -> np.ndarray:
        m = self.sum.sum(axis=1) / self._n
        return np.where(self.covered(), m, NAN)

    def total(self) -> np.ndarray:
        return np.where(self.covered(), self.sum.sum(axis=1), NAN)

    def min(self) -> np.ndarray:
        m = self.mn.min(axis=1)
        return np.where(self.covered() & np.isfinite(m), m, NAN)

    def max(self) -> np.ndarray:
        m = self.mx.max(axis=1)
        return np.where(self.covered() & np.isfinite(m), m, NAN)

    def oldest_first(self) -> np.ndarray:
        """The first value of the oldest non-empty bucket (the value at the start of the window)."""
        order = (self.cur - self.k + 1 + np.arange(self.k)) % self.k
        f = self.first[:, order]
        has = ~np.isnan(f)
        j = has.argmax(axis=1)
        out = f[np.arange(f.shape[0]), j]
        return np.where(has.any(axis=1) & self.covered(), out, NAN)


class Lag:
    """The value an expression had about ``lag_s`` ago (the mean of the bucket that far back)."""

    def __init__(self, n: int, lag_s: float, step_s: float) -> None:
        self.k = max(1, min(LAG_BUCKETS, math.ceil(lag_s / step_s - 1e-9)))
        self.width = lag_s / self.k
        self.sum = np.zeros((n, self.k + 1))
        self.cnt = np.zeros((n, self.k + 1), np.float32)
        self.cur: int | None = None

    def push(self, now: float, x: np.ndarray) -> np.ndarray:
        b = int(now // self.width)
        size = self.k + 1
        if self.cur is None or b - self.cur >= size:
            self.sum[:] = 0
            self.cnt[:] = 0
        elif b > self.cur:
            cols = np.arange(self.cur + 1, b + 1) % size
            self.sum[:, cols] = 0
            self.cnt[:, cols] = 0
        self.cur = b if self.cur is None else max(self.cur, b)
        ok = ~np.isnan(x)
        self.sum[:, b % size] += np.where(ok, x, 0.0)
        self.cnt[:, b % size] += ok
        old = (b - self.k) % size
        return np.where(self.cnt[:, old] > 0, self.sum[:, old] / self.cnt[:, old], NAN)


@dataclass
class Since:
    """State of ``unchanged_for`` / ``hours_since``: a reference value and when it was set."""

    ref: np.ndarray
    ts: np.ndarray


# --- function table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FnSpec:
    """A function of the language: its arity, whether argument 1 must be a point name, what it needs."""

    args: tuple[str, ...]  # 'x' expression, 'p' point name, 'd' duration, 'q' quality name
    doc: str
    stateful: bool = False


FUNCTIONS: dict[str, FnSpec] = {
    "abs": FnSpec(("x",), "absolute value"),
    "sqrt": FnSpec(("x",), "square root"),
    "min": FnSpec(("x", "x", "..."), "smallest of its arguments (unknown if any is unknown)"),
    "max": FnSpec(("x", "x", "..."), "largest of its arguments (unknown if any is unknown)"),
    "mean": FnSpec(("x", "d"), "rolling mean over a window, e.g. mean(sat, '5m')", True),
    "rmin": FnSpec(("x", "d"), "rolling minimum over a window", True),
    "rmax": FnSpec(("x", "d"), "rolling maximum over a window", True),
    "delta": FnSpec(("x", "d"), "increase over a window: now minus the value at the window start", True),
    "rate": FnSpec(("x", "d"), "rate of change per hour over a window: delta(x, w) / hours", True),
    "changes": FnSpec(("x", "d"), "how many times the value changed within the window", True),
    "mean_when": FnSpec(("x", "x", "d"), "rolling mean of x over the window, only where the condition held",
                        True),
    "lag": FnSpec(("x", "d"), "the value about that long ago (mean of that bucket)", True),
    "unchanged_for": FnSpec(("x", "x"), "seconds the value stayed within +-tol of where it last moved to",
                            True),
    "hours_since": FnSpec(("x",), "hours since the condition was last true (since start if never)", True),
    "age": FnSpec(("p",), "seconds since the point's (or device's) last good reading"),
    "prev": FnSpec(("p",), "the point's previous good sample"),
    "prev2": FnSpec(("p",), "the good sample before the previous one"),
    "prev3": FnSpec(("p",), "the good sample before prev2"),
    "raw": FnSpec(("p",), "the point's last value whatever its quality"),
    "lo": FnSpec(("p",), "the low end of the point's declared range (site file), unknown if none"),
    "hi": FnSpec(("p",), "the high end of the point's declared range (site file), unknown if none"),
    "flagged": FnSpec(("p", "q"), "1 if the point's last reading has that quality, e.g. flagged(x, 'stale')"),
    "known": FnSpec(("x",), "1 if the value is known, 0 if unknown (never unknown itself)"),
    "ahu_mode": FnSpec(("x", "x", "x", "x"), "G36 AHU operating state 1-5 from ahu_mode(heating valve %, "
                       "cooling valve %, OA damper %, minimum OA damper %)"),
}

WINDOW_NEEDS = {
    "mean": frozenset({"sum"}), "rmin": frozenset({"min"}), "rmax": frozenset({"max"}),
    "delta": frozenset({"first"}), "rate": frozenset({"first"}), "changes": frozenset({"sum"}),
    "mean_when": frozenset({"sum", "seen"}),
}


@dataclass
class Compiled:
    """A compiled expression: the closure, the names it reads, and the state slots it needs."""

    fn: Fn
    names: set[str] = field(default_factory=set)
    point_args: set[str] = field(default_factory=set)
    slot_factories: list[Callable[[int, float], Any]] = field(default_factory=list)
    min_step_s: float = math.inf
    max_window_s: float = 0.0  # the longest rolling window or lag: part of how long detection takes
    kind: str = "num"


@dataclass
class _N:
    """A compiled node: its closure, and what it yields (a constant, a truth value, or a number)."""

    fn: Fn
    kind: str = "num"  # "const" | "bool" | "num"
    value: float = NAN  # for constants


def _const(c: float) -> _N:
    return _N(lambda f: c, "const", c)


class _Compiler:
    def __init__(self, known: set[str], points: set[str], slot_base: int, line_offset: int) -> None:
        self.known = known
        self.points = points
        self.out = Compiled(fn=lambda f: f)  # placeholder, replaced
        self.slot_base = slot_base
        self.line_offset = line_offset

    def err(self, node: ast.AST, msg: str) -> ExprError:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + (0 if line == 1 else 1)  # line 1 carries the added "("
        return ExprError(msg, line + self.line_offset, max(1, col))

    def slot(self, factory: Callable[[int, float], Any]) -> int:
        self.out.slot_factories.append(factory)
        return self.slot_base + len(self.out.slot_factories) - 1

    def boolean(self, node: ast.AST) -> Fn:
        """Compile a node used as a truth value (numbers become nonzero -> 1)."""
        n = self.node(node)
        if n.kind == "bool":
            return n.fn
        if n.kind == "const":
            t = 1.0 if n.value != 0 else (NAN if math.isnan(n.value) else 0.0)
            return lambda f: t
        fn = n.fn
        return lambda f: truth(fn(f))

    def compile(self, node: ast.AST) -> Fn:
        return self.node(node).fn

    def node(self, node: ast.AST) -> _N:
        """Compile one AST node through the table of allowed node kinds; any other kind is refused."""
        build = _NODES.get(type(node))
        if build is None:
            raise self.err(node, f"{_refused(node)} is not allowed in a condition")
        return build(self, node)

    def _expression(self, node: ast.Expression) -> _N:
        return self.node(node.body)

    def _constant(self, node: ast.Constant) -> _N:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(node, f"{v!r} is not a number here (text is only allowed as a window, "
                                 "e.g. '5m', or a quality name)")
        return _const(float(v))

    def _name(self, node: ast.Name) -> _N:
        name = node.id
        if name in ("true", "True"):
            return _N(lambda f: 1.0, "bool")
        if name in ("false", "False"):
            return _N(lambda f: 0.0, "bool")
        if name not in self.known:
            raise self.err(node, f"unknown name {name!r}; known: {', '.join(sorted(self.known))}")
        self.out.names.add(name)
        return _N(lambda f: f.names[name])

    def _unary(self, node: ast.UnaryOp) -> _N:
        if isinstance(node.op, ast.Not):
            a = self.boolean(node.operand)
            return _N(lambda f: 1.0 - a(f), "bool")
        n = self.node(node.operand)
        if isinstance(node.op, ast.USub):
            if n.kind == "const":
                return _const(-n.value)
            fn = n.fn
            return _N(lambda f: -fn(f))
        if isinstance(node.op, ast.UAdd):
            return n
        raise self.err(node, "only -x, +x and not x are allowed")

    def _binop(self, node: ast.BinOp) -> _N:
        op = _BIN.get(type(node.op))
        if op is None:
            raise self.err(node, f"operator {type(node.op).__name__} is not allowed; use + - * /")
        na, nb = self.node(node.left), self.node(node.right)
        if na.kind == "const" and nb.kind == "const":
            with np.errstate(all="ignore"):
                v = float(op(na.value, nb.value))
            return _const(v if math.isfinite(v) else NAN)
        a, b = na.fn, nb.fn
        if op is np.divide:
            def div(f: Frame) -> np.ndarray:
                r = a(f) / b(f)
                return np.where(np.isinf(r), NAN, r)
            return _N(div)
        return _N(lambda f: op(a(f), b(f)))

    def _boolop(self, node: ast.BoolOp) -> _N:
        parts = [self.boolean(v) for v in node.values]
        return _N(_fold(_and if isinstance(node.op, ast.And) else _or, parts), "bool")

    def _compare(self, node: ast.Compare) -> _N:
        nodes = [self.node(node.left)] + [self.node(c) for c in node.comparators]
        fns = []
        for k, op in enumerate(node.ops):
            u = _CMP.get(type(op))
            if u is None:
                raise self.err(node, f"comparison {type(op).__name__} is not allowed; use < <= > >= == !=")
            left, right = nodes[k], nodes[k + 1]
            if right.kind == "const":
                fns.append(self._cmp_c(u, left.fn, right.value))
            elif left.kind == "const":
                fns.append(self._cmp_c(_SWAP[u], right.fn, left.value))
            else:
                fns.append(self._cmp2(u, left.fn, right.fn))
        return _N(fns[0] if len(fns) == 1 else _fold(_and, fns), "bool")

    def _ifexp(self, node: ast.IfExp) -> _N:
        c = self.boolean(node.test)
        na, nb = self.node(node.body), self.node(node.orelse)
        a, b = na.fn, nb.fn

        def ifexp(f: Frame) -> np.ndarray:
            t = c(f)
            return np.where(t == 1, a(f), np.where(t == 0, b(f), NAN))
        return _N(ifexp, "bool" if na.kind == nb.kind == "bool" else "num")

    @staticmethod
    def _cmp_c(u: Any, a: Fn, c: float) -> Fn:
        if math.isnan(c):
            return lambda f: NAN
        return lambda f: (lambda x: u(x, c) + x * 0.0)(a(f))

    @staticmethod
    def _cmp2(u: Any, a: Fn, b: Fn) -> Fn:
        def cmp(f: Frame) -> np.ndarray:
            x, y = a(f), b(f)
            return u(x, y) + (x * 0.0 + y * 0.0)
        return cmp

    # --- calls: checked against FUNCTIONS, then built by the function's entry in _CALLS (or as a window)

    def call(self, node: ast.Call) -> _N:
        """Compile a call of one of FUNCTIONS: check its arguments, then build it from its table entry."""
        name, spec = self._check_call(node)
        args = node.args
        if spec.args[0] == "p":
            a0 = args[0]
            if not isinstance(a0, ast.Name) or a0.id not in self.points:
                raise self.err(node, f"{name}() takes a point name of this rule ({', '.join(sorted(self.points))})")
            self.out.point_args.add(a0.id)
            self.out.names.add(a0.id)
            return self.point_fn(node, name, a0.id, args)
        build = _CALLS.get(name)
        if build is not None:
            return build(self, name, args)
        return self._windowed(node, name, args)

    def _check_call(self, node: ast.Call) -> tuple[str, FnSpec]:
        """The called function's name and spec, after checking it is known and given the right arguments."""
        if not isinstance(node.func, ast.Name):
            raise self.err(node, "only calls of the named functions are allowed (no methods, no attributes)")
        name = node.func.id
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self.err(node, f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise self.err(node, f"{name}() takes no keyword arguments")
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args):
            raise self.err(node, f"{name}() takes no *arguments")
        variadic = spec.args[-1] == "..."
        fixed = spec.args[:-1] if variadic else spec.args
        if (variadic and len(args) < len(fixed)) or (not variadic and len(args) != len(fixed)):
            want = f"at least {len(fixed)}" if variadic else str(len(fixed))
            raise self.err(node, f"{name}() takes {want} argument(s), got {len(args)}")
        return name, spec

    def _fn_math(self, name: str, args: list[ast.expr]) -> _N:
        n = self.node(args[0])
        u = np.abs if name == "abs" else np.sqrt
        if n.kind == "const":
            with np.errstate(all="ignore"):
                return _const(float(u(n.value)))
        a = n.fn
        return _N(lambda f: u(a(f)))

    def _fn_minmax(self, name: str, args: list[ast.expr]) -> _N:
        parts = [self.compile(a) for a in args]
        red = np.minimum if name == "min" else np.maximum

        def minmax(f: Frame) -> np.ndarray:
            acc = parts[0](f)
            for p in parts[1:]:
                acc = red(acc, p(f))
            return acc
        return _N(minmax)

    def _fn_ahu_mode(self, name: str, args: list[ast.expr]) -> _N:
        hc, cc, oad, oad_min = (self.compile(a) for a in args)

        def ahu_mode(f: Frame) -> np.ndarray:
            h, c, d, m = hc(f), cc(f), oad(f), oad_min(f)
            at_min = d <= m + 5  # "at minimum": within 5 % of the minimum position
            return np.select(
                [(h > 0) & (c == 0) & at_min, (h == 0) & (c == 0) & ~at_min,
                 (h == 0) & (c > 0) & (d >= 95), (h == 0) & (c > 0) & at_min],
                [1.0, 2.0, 3.0, 4.0], 5.0) + (h * 0.0 + c * 0.0 + d * 0.0)
        return _N(ahu_mode)

    def _fn_known(self, name: str, args: list[ast.expr]) -> _N:
        a = self.compile(args[0])
        return _N(lambda f: 1.0 - np.isnan(a(f)), "bool")

    def _fn_unchanged_for(self, name: str, args: list[ast.expr]) -> _N:
        a, tol = self.compile(args[0]), self.compile(args[1])
        s = self.slot(lambda n, step: Since(np.full(n, NAN), np.full(n, NAN)))

        def unchanged_for(f: Frame) -> np.ndarray:
            st: Since = f.slots[s]
            x, t = a(f), tol(f)
            moved = ~np.isnan(x) & (np.isnan(st.ref) | (np.abs(x - st.ref) > t))
            if moved.any():
                st.ref = np.where(moved, x, st.ref)
                st.ts = np.where(moved, f.now, st.ts)
            return f.now - st.ts + x * 0.0
        return _N(unchanged_for)

    def _fn_hours_since(self, name: str, args: list[ast.expr]) -> _N:
        a = self.boolean(args[0])
        s = self.slot(lambda n, step: Since(np.zeros(n), np.full(n, NAN)))

        def hours_since(f: Frame) -> np.ndarray:
            st: Since = f.slots[s]
            t = a(f)
            st.ts = np.where((t == 1) | np.isnan(st.ts), f.now, st.ts)  # since start if never true
            return (f.now - st.ts) / 3600.0
        return _N(hours_since)

    # --- windowed functions: the last argument is a duration literal

    def _window_length(self, name: str, dur_node: ast.expr, call: ast.Call) -> float:
        """The window of a windowed call in seconds, from its literal last argument."""
        if not isinstance(dur_node, ast.Constant) or isinstance(dur_node.value, bool):
            raise self.err(call, f"{name}()'s window must be a literal duration such as '5m' or 300")
        try:
            w = parse_duration(dur_node.value)
        except ValueError as exc:
            raise self.err(dur_node, str(exc)) from None
        if w <= 0:
            raise self.err(dur_node, f"{name}() needs a window longer than 0 s")
        return w

    def _windowed(self, node: ast.Call, name: str, args: list[ast.expr]) -> _N:
        w = self._window_length(name, args[-1], node)
        self.out.min_step_s = min(self.out.min_step_s, w)
        self.out.max_window_s = max(self.out.max_window_s, w)
        a = self.compile(args[0])
        if name == "lag":
            s = self.slot(lambda n, step, w=w: Lag(n, w, step))
            return _N(lambda f: f.slots[s].push(f.now, a(f)))
        need = WINDOW_NEEDS[name]
        s = self.slot(lambda n, step, w=w, need=need: Window(n, w, step, need))
        if name == "mean_when":
            return self._win_mean_when(s, a, args)
        if name == "changes":
            return self._win_changes(s, a)
        read = _WINDOW_READS[name]

        def windowed(f: Frame) -> np.ndarray:
            win: Window = f.slots[s]
            x = a(f)
            win.push(f.now, x)
            return read(win, x, w)
        return _N(windowed)

    def _win_mean_when(self, s: int, a: Fn, args: list[ast.expr]) -> _N:
        cond = self.boolean(args[1])

        def mean_when(f: Frame) -> np.ndarray:
            win: Window = f.slots[s]
            x = a(f)
            win.push(f.now, np.where(cond(f) == 1, x, NAN), seen=x == x)
            cnt = win.cnt.sum(axis=1)
            return np.where((cnt >= 1) & win.seen_covered(), win.sum.sum(axis=1) / np.maximum(cnt, 1), NAN)
        return _N(mean_when)

    def _win_changes(self, s: int, a: Fn) -> _N:
        prev_slot = self.slot(lambda n, step: [np.full(n, NAN)])

        def changes(f: Frame) -> np.ndarray:
            win: Window = f.slots[s]
            holder = f.slots[prev_slot]
            x = a(f)
            p = holder[0]
            ch = (x != p) + (x * 0.0 + p * 0.0)
            holder[0] = np.where(np.isnan(x), p, x)
            win.push(f.now, ch)
            return win.total()
        return _N(changes)

    def point_fn(self, node: ast.Call, name: str, var: str, args: list[ast.expr]) -> _N:
        """Compile a function of a point variable: a field of its PointView, or flagged(x, 'quality')."""
        read = _POINT_READS.get(name)
        if read is not None:
            return _N(lambda f: read(f.points[var]))
        q = args[1]  # flagged(x, 'quality')
        if not isinstance(q, ast.Constant) or q.value not in QUALITY_CODES:
            raise self.err(node, f"flagged() takes a quality name: {', '.join(QUALITY_CODES)}")
        code = QUALITY_CODES[q.value]
        return _N(lambda f: (f.points[var].quality == code) * 1.0, "bool")


# The tables the compiler dispatches on: a new node kind or function is one method and one entry here.
_NODES: dict[type, Callable[[_Compiler, Any], _N]] = {
    ast.Expression: _Compiler._expression, ast.Constant: _Compiler._constant, ast.Name: _Compiler._name,
    ast.UnaryOp: _Compiler._unary, ast.BinOp: _Compiler._binop, ast.BoolOp: _Compiler._boolop,
    ast.Compare: _Compiler._compare, ast.IfExp: _Compiler._ifexp, ast.Call: _Compiler.call,
}
_CALLS: dict[str, Callable[[_Compiler, str, list[ast.expr]], _N]] = {
    "abs": _Compiler._fn_math, "sqrt": _Compiler._fn_math, "min": _Compiler._fn_minmax,
    "max": _Compiler._fn_minmax, "ahu_mode": _Compiler._fn_ahu_mode, "known": _Compiler._fn_known,
    "unchanged_for": _Compiler._fn_unchanged_for, "hours_since": _Compiler._fn_hours_since,
}
# what a plain windowed function returns, from the window, the current value and the window length
_WINDOW_READS: dict[str, Callable[[Window, np.ndarray, float], np.ndarray]] = {
    "mean": lambda win, x, w: win.mean(),
    "rmin": lambda win, x, w: win.min(),
    "rmax": lambda win, x, w: win.max(),
    "delta": lambda win, x, w: x - win.oldest_first(),
    "rate": lambda win, x, w: (x - win.oldest_first()) / (w / 3600.0),
}
_POINT_READS: dict[str, Callable[[PointView], np.ndarray]] = {
    "age": lambda p: p.age,
    "prev": lambda p: p.prev + p.value * 0.0,
    "prev2": lambda p: p.prev2 + p.value * 0.0,
    "prev3": lambda p: p.prev3 + p.value * 0.0,
    "raw": lambda p: p.raw,
    "lo": lambda p: p.lo,
    "hi": lambda p: p.hi,
}
_REFUSED = {"Attribute": "attribute access (a.b)", "Subscript": "subscripts (a[b])", "Lambda": "lambda",
            "ListComp": "comprehensions", "GeneratorExp": "comprehensions", "SetComp": "comprehensions",
            "DictComp": "comprehensions", "JoinedStr": "f-strings", "NamedExpr": ":=",
            "List": "lists", "Tuple": "tuples", "Dict": "dicts", "Set": "sets"}


def _refused(node: ast.AST) -> str:
    """How an error message names a node kind the language does not allow."""
    kind = type(node).__name__
    return _REFUSED.get(kind, kind)


_SWAP = {np.less: np.greater, np.greater: np.less, np.less_equal: np.greater_equal,
         np.greater_equal: np.less_equal, np.equal: np.equal, np.not_equal: np.not_equal}


def parse(text: str) -> ast.Expression:
    """Parse a condition's text into a Python AST (syntax only; the whitelist walk comes in compile_expr)."""
    src = text.strip()
    if not src:
        raise ExprError("the condition is empty")
    # one logical expression over several YAML lines: the parentheses let it span lines
    try:
        return ast.parse("(" + src + "\n)", mode="eval")
    except SyntaxError as exc:
        lines = src.split("\n")
        line = exc.lineno or 1
        col = max(1, (exc.offset or 2) - 1) if line == 1 else (exc.offset or 1)
        if line > len(lines):  # the error is at the end of the text (an unfinished expression)
            line, col = len(lines), len(lines[-1]) + 1
        raise ExprError(f"syntax error: {exc.msg}", line, col) from None


def compile_expr(text: str, known: set[str], points: set[str], slot_base: int = 0) -> Compiled:
    """Parse and compile a condition; ``known`` are the names it may read, ``points`` the point variables."""
    tree = parse(text)
    c = _Compiler(known, points, slot_base, 0)
    n = c.node(tree)
    fn = n.fn
    c.out.fn = fn
    c.out.kind = n.kind
    return c.out
