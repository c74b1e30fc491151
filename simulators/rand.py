"""Deterministic randomness that is a pure function of (seed, key, time).

Why not a sequential RNG: the live simulator must give the value of any point at any instant without replaying
everything before it, and the history generator must give the same numbers whatever chunk size it uses. So
every random number here is a counter-based hash (splitmix64) of its inputs, vectorised with numpy.
"""

from __future__ import annotations

import hashlib

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def key64(*parts: object) -> int:
    """A stable 64-bit integer for any tuple of strings/ints (process-independent, unlike hash())."""
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def _mix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
        return z ^ (z >> np.uint64(31))


def uniform(key: int, idx: np.ndarray | int) -> np.ndarray:
    """Uniform [0, 1) numbers for integer indices ``idx`` under ``key``."""
    i = np.asarray(idx, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(i * _GOLDEN + np.uint64(key & 0xFFFFFFFFFFFFFFFF))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(key: int, idx: np.ndarray | int) -> np.ndarray:
    """Standard normal numbers for integer indices (Box-Muller on two hashed uniforms)."""
    u1 = uniform(key, idx)
    u2 = uniform(key ^ 0x5DEECE66D, idx)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def smooth(key: int, x: np.ndarray) -> np.ndarray:
    """Smooth value noise in [-1, 1]: random values at integer x, cosine-interpolated between them."""
    x = np.asarray(x, dtype=np.float64)
    i0 = np.floor(x)
    f = x - i0
    w = 0.5 - 0.5 * np.cos(np.pi * f)
    a = uniform(key, i0.astype(np.int64)) * 2.0 - 1.0
    b = uniform(key, i0.astype(np.int64) + 1) * 2.0 - 1.0
    return a + (b - a) * w
