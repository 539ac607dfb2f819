"""The verdict: every score, pass/fail per check and overall, a Slack-readable report, a plot."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

ENGINE_VERSION = "1.0.0"
"""Bumped whenever a score could change for the same submission (re-verification is recorded)."""


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples lists, tensors/numpy scalars plain numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value


def _floor(x: float, digits: int) -> float:
    scale = 10**digits
    return math.floor(x * scale + 1e-9) / scale  # 1e-9: 98.96 * 100 is 9895.999...


def format_vs_threshold(
    value: float | None, threshold: float, *, percent: bool = False, digits: int | None = None
) -> tuple[str, str]:
    """``(value, threshold)`` as text that never reads as a pass when ``value < threshold``.

    Shown rounded (1 decimal for percentages, 3 for ratios unless ``digits``); a failing value
    gets more digits until it reads below the threshold (98.96% against 99% reads "98.96% (needs
    99.00%)", not "99.0% (needs 99.0%)"), floored as a last resort. Rounding is monotone, so a
    passing value never reads below its threshold.
    """
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    base = digits if digits is not None else (1 if percent else 3)
    if value is None or not math.isfinite(value):
        return "n/a", f"{threshold * scale:.{base}f}{suffix}"
    v, t = value * scale, threshold * scale
    for d in range(base, base + 6):
        shown_v, shown_t = f"{v:.{d}f}", f"{t:.{d}f}"
        if v >= t or float(shown_v) < float(shown_t):
            return shown_v + suffix, shown_t + suffix
    d = base + 6  # a hair below: floored, so it still reads as below
    return f"{_floor(v, d):.{d}f}{suffix}", f"{t:.{d}f}{suffix}"


@dataclass
class CheckResult:
    name: str
    passed: bool
    score: float | None = None
    """The headline number (agreement, faithfulness) or None when the check could not run."""
    threshold: float | None = None
    message: str = ""
    """One line a participant understands: what was measured and why it passed or failed."""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _clean(
            {
                "name": self.name,
                "passed": self.passed,
                "score": self.score,
                "threshold": self.threshold,
                "message": self.message,
                "details": self.details,
            }
        )


@dataclass
class Verdict:
    passed: bool
    checks: dict[str, CheckResult] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    report_md: str = ""
    plot_png: bytes | None = None
    runtime_s: float = 0.0
    device: str = "cpu"
    engine_version: str = ENGINE_VERSION
    error: str | None = None
    """Set when the submission could not be verified at all (bad file, crash, limits): user-facing."""
    error_kind: str | None = None
    """``input`` (the file itself: size, encoding, syntax, notebook), ``runtime`` (the code crashed,
    timed out or hit a limit in the sandbox) or ``infrastructure`` (not the participant's fault)."""
    puzzle: str = ""
    seed_kind: str = "public"
    """``public`` (local self-check, reproducible by anyone) or ``secret`` (the server's held-out set)."""
    sandboxed: bool = True
    memory_peak_mb: float | None = None
    """The sandbox's peak memory, all its processes together (where a cgroup measured it)."""

    static: dict[str, Any] = field(default_factory=dict)
    """The static scan (:mod:`puzzles.verify.static`): literal bytes and their bound, the largest
    literal's line, and ``description_bytes`` (reported as the ``compactness`` score)."""

    @property
    def compactness(self) -> int | None:
        """Description length of the submission: compressed bytes of its canonical code."""
        return self.static.get("description_bytes")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; the PNG travels base64-encoded."""
        return _clean(
            {
                "passed": self.passed,
                "checks": {name: check.to_json() for name, check in self.checks.items()},
                "scores": self.scores,
                "report_md": self.report_md,
                "plot_png": base64.b64encode(self.plot_png).decode() if self.plot_png else None,
                "runtime_s": self.runtime_s,
                "device": self.device,
                "engine_version": self.engine_version,
                "error": self.error,
                "error_kind": self.error_kind,
                "puzzle": self.puzzle,
                "seed_kind": self.seed_kind,
                "sandboxed": self.sandboxed,
                "memory_peak_mb": self.memory_peak_mb,
                "static": self.static,
                "compactness": self.compactness,
            }
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        checks = {
            name: CheckResult(**{k: v for k, v in check.items()})
            for name, check in (data.get("checks") or {}).items()
        }
        png = data.get("plot_png")
        return cls(
            passed=bool(data["passed"]),
            checks=checks,
            scores=data.get("scores") or {},
            report_md=data.get("report_md", ""),
            plot_png=base64.b64decode(png) if png else None,
            runtime_s=float(data.get("runtime_s", 0.0)),
            device=data.get("device", "cpu"),
            engine_version=data.get("engine_version", ENGINE_VERSION),
            error=data.get("error"),
            error_kind=data.get("error_kind"),
            puzzle=data.get("puzzle", ""),
            seed_kind=data.get("seed_kind", "public"),
            sandboxed=bool(data.get("sandboxed", True)),
            memory_peak_mb=data.get("memory_peak_mb"),
            static=data.get("static") or {},
        )
