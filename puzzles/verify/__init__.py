"""The verification engine: submission loading, sandbox, checks, reports and plots.

Public API (see the "Verification engine API" contract)::

    verdict = verify_submission(source_bytes, "solution.py", puzzle, seed=secret_seed, device="cpu")
    verdict.passed, verdict.checks, verdict.report_md, verdict.plot_png, verdict.to_json()

Importing this package does not import torch; ``verify_submission`` does, on first call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from puzzles.verify.sandbox import SandboxLimits, SandboxPool, SandboxUnavailable
from puzzles.verify.submission import SubmissionError, load_submission
from puzzles.verify.verdict import ENGINE_VERSION, CheckResult, Verdict

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

__all__ = [
    "ENGINE_VERSION",
    "CheckResult",
    "SandboxLimits",
    "SandboxPool",
    "SandboxUnavailable",
    "SubmissionError",
    "Verdict",
    "load_submission",
    "verify_submission",
]


def verify_submission(
    source: bytes,
    filename: str,
    puzzle: Puzzle,
    *,
    seed: int | None = None,
    device: str = "cpu",
    sandbox: bool = True,
    progress: Callable[[str], None] | None = None,
    pool: SandboxPool | None = None,
    limits: SandboxLimits | None = None,
    heldout_size: int | None = None,
    hard_seed: int | None = None,
) -> Verdict:
    """Verify an uploaded file against a puzzle; see :func:`puzzles.verify.engine.verify_submission`."""
    from puzzles.verify.engine import verify_submission as _verify

    return _verify(
        source,
        filename,
        puzzle,
        seed=seed,
        device=device,
        sandbox=sandbox,
        progress=progress,
        pool=pool,
        limits=limits,
        heldout_size=heldout_size,
        hard_seed=hard_seed,
    )
