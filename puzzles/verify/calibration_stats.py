"""The statistics behind every calibrated threshold: seeds, confidence bounds, summaries.

Shared by the replication calibration (``calibration``) and the causal one
(``causal_calibration``), so both read their bounds the same way and neither imports the other.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CALIBRATION_SEED = 0xC1B0_2026
TARGET_PASS_RATE = 0.995
CONFIDENCE = 0.95


def calibration_seeds(n: int, master: int = CALIBRATION_SEED) -> list[int]:
    """``n`` reproducible 63-bit seeds, disjoint in practice from any server secret."""
    state = np.random.SeedSequence(master).generate_state(n, dtype=np.uint64)
    return [int(s) >> 1 for s in state]


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (n is a few hundred at most)."""
    if p <= 0:
        return 1.0 if k <= 0 else 0.0
    if p >= 1:
        return 1.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(max(0, k), n + 1)
    ]  # fmt: skip
    return float(sum(math.exp(x) for x in logs))


def _bisect(f: Callable[[float], bool]) -> float:
    lo, hi = 0.0, 1.0  # f(lo) false, f(hi) true, monotone
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if f(mid) else (mid, hi)
    return hi


def clopper_pearson_lower(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided lower confidence bound on a success probability after ``k`` of ``n``:
    the smallest p under which seeing ``k`` or more is not too unlikely."""
    if k == 0:
        return 0.0
    return _bisect(lambda p: _binom_sf(k, n, p) >= 1 - confidence)


def clopper_pearson_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound after ``k`` of ``n`` (mirror of the lower bound)."""
    return 1.0 - clopper_pearson_lower(n - k, n, confidence)


def _z(n: int) -> float:
    """The 99.5% normal quantile, widened for a deviation estimated from ``n`` values."""
    z = statistics.NormalDist().inv_cdf(TARGET_PASS_RATE)
    return z * (1 + 1 / math.sqrt(max(1, 2 * (n - 1))))


def lower_bound(values: Sequence[float]) -> float:
    """Mean minus ``z`` deviations, never above the worst value seen."""
    mean, sd = statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0
    return min(min(values), mean - _z(len(values)) * sd)


def upper_bound(values: Sequence[float]) -> float:
    """Mean plus ``z`` deviations, never below the best value seen."""
    mean, sd = statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0
    return max(max(values), mean + _z(len(values)) * sd)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """The distribution as calibration.json records it: n, mean, sd and quantiles."""
    if not values:
        return {"n": 0}
    q = np.quantile(np.asarray(values, dtype=float), [0.0, 0.005, 0.05, 0.5, 0.95, 1.0])
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "sd": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": q[0],
        "q005": q[1],
        "q05": q[2],
        "median": q[3],
        "q95": q[4],
        "max": q[5],
    }


def floor_to(x: float, digits: int = 3) -> float:
    """Round down, so a threshold never sits above the bound it came from."""
    return math.floor(x * 10**digits) / 10**digits
