"""The engine's hook for format v2: the ``causal`` check of a verdict, kept apart from the v1 flow.

A submission without ``HYPOTHESIS`` gets no causal check and no causal score (a task rule or a weight
copy declares no variables). With one, the declaration is read statically here, checked against the
model, and the sandbox job carries the wiring; the model is patched only in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from puzzles.verify.causal import InterventionEngine
from puzzles.verify.causal_check import CausalJob, build_job, causal_check, render_causal_plot
from puzzles.verify.hypothesis import HypothesisError, find_declaration, parse_hypothesis
from puzzles.verify.verdict import CheckResult, Verdict


@dataclass
class _Declared:
    value: Any = None
    error: str | None = None


def declaration(source: str) -> _Declared | None:
    """The literal ``HYPOTHESIS`` of the source (or why it cannot be read); None without one."""
    try:
        value = find_declaration(source)
    except HypothesisError as exc:
        return _Declared(error=str(exc))
    return None if value is None else _Declared(value=value)


@dataclass
class CausalPlan:
    wanted: bool
    job: CausalJob | None = None
    error: str | None = None
    seed: int = 0

    def check(self, outcome: Any, engine: Any, config: dict[str, Any]) -> CheckResult:
        error = self.error or outcome.result.get("errors", {}).get("hypothesis")
        if error or self.job is None or outcome.causal is None:
            message = error or "the hypothesis produced no output"
            return CheckResult(name="causal", passed=False, message=message)
        return causal_check(
            InterventionEngine(engine), self.job, outcome.causal, config=config, seed=self.seed
        )


def prepare(declared: _Declared | None, engine: Any, task: Any, config, *, seed: int) -> CausalPlan:
    """Validate the declaration against the model and draw the candidate pairs on ``seed``."""
    if declared is None:
        return CausalPlan(wanted=False)
    if declared.error:
        return CausalPlan(wanted=True, error=declared.error)
    cfg = engine.cfg
    try:
        hypothesis = parse_hypothesis(
            declared.value,
            n_layers=engine.n_layers,
            n_heads=engine.n_heads,
            attn_only=engine.attn_only,
            seq_len=int(task.SEQ_LEN),
            d_model=int(cfg.d_model),
            d_head=int(cfg.d_head),
        )
    except HypothesisError as exc:
        return CausalPlan(wanted=True, error=f"HYPOTHESIS: {exc}")
    job = build_job(
        hypothesis,
        engine.tokens.cpu(),
        seed=seed,
        k=len(task.ANSWER_POSITIONS),
        n_classes=len(task.CLASSES),
        config=config,
    )
    return CausalPlan(wanted=True, job=job, seed=seed)


def add_plot(verdict: Verdict, notes: list[str]) -> None:
    """Put the per-variable IIA bars beside the verdict's plot."""
    check = verdict.checks.get("causal")
    if check is None or not check.details.get("variables"):
        return
    try:
        verdict.plot_png = render_causal_plot(check, verdict.plot_png)
    except Exception as exc:  # a plot is a nicety, never a reason to lose a verdict
        notes.append(f"causal plot failed: {type(exc).__name__}")


def trusted_counterfactuals(
    source: str, job: CausalJob
) -> tuple[dict[str, Any] | None, str | None]:
    """Run the hypothesis' functions IN THIS PROCESS: only for code we trust (the catalog's
    references, tests, benchmarks). Uploads always go through the sandbox."""
    import torch

    from puzzles.verify import _runner

    namespace: dict[str, Any] = {"__name__": "submission"}
    exec(compile(source, _runner.SUBMISSION_FILENAME, "exec"), namespace)
    inputs = {"pool": job.pool}
    inputs.update({f"pairs.{i}": p for i, p in enumerate(job.pairs)})
    out, error = _runner.counterfactuals(namespace, job.spec, inputs, torch)
    if out is not None:
        error = job.check(out)
    return (None, error) if error else (out, None)


def check_trusted(source: str, engine: Any, task: Any, config, *, seed: int) -> CheckResult:
    """The causal check of trusted source against an engine's pool, without a sandbox."""
    plan = prepare(declaration(source), engine, task, config, seed=seed)
    if not plan.wanted:
        return CheckResult(name="causal", passed=False, message="no HYPOTHESIS declared")
    if plan.job is None:
        return CheckResult(name="causal", passed=False, message=plan.error or "")
    tensors, error = trusted_counterfactuals(source, plan.job)
    if error or tensors is None:
        return CheckResult(name="causal", passed=False, message=error or "no counterfactuals")
    return causal_check(InterventionEngine(engine), plan.job, tensors, config=config, seed=seed)
