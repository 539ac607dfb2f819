"""``verify_submission``: an uploaded file in, a :class:`Verdict` out.

The submission's code runs only in the sandbox (``predict`` on the held-out tokens, no weights);
the circuit check runs here, in the trusted process that holds the model, and uses nothing from the
submission but its validated ``CIRCUIT`` list of strings.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

# At import, not inside verify_submission: several threads verifying at once (a pool, the hostile
# suite) would otherwise import it concurrently and one could see a half-initialised module.
from puzzles.models import load_model, load_task, model_predictions
from puzzles.verify import causal_section
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.checks import replication_check
from puzzles.verify.circuit_check import circuit_check
from puzzles.verify.components import ComponentError, parse_circuit
from puzzles.verify.hardset import DEFAULT_POOL, DEFAULT_SIZE, HardSet, cached_hard_set
from puzzles.verify.quality import verdict_quality
from puzzles.verify.report import render_plot, render_report
from puzzles.verify.sandbox import (
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxOutcome,
    SandboxPool,
)
from puzzles.verify.static import limits_from_config, scan_source
from puzzles.verify.submission import SubmissionError, load_submission
from puzzles.verify.verdict import CheckResult, Verdict

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_SEED = 20_240_601
DEFAULT_HELDOUT_SIZE = 2000
DEFAULT_CIRCUIT_SIZE = 1000


def public_seed(puzzle: Puzzle) -> int:
    """The seed of the public self-check set (anyone can reproduce it; the server uses a secret one)."""
    return int(puzzle.verify.get("public_seed", DEFAULT_PUBLIC_SEED))


_MODELS: dict[tuple[str, str, str], Any] = {}
_LOADING: dict[tuple[str, str, str], threading.Lock] = {}
_LOADING_LOCK = threading.Lock()


def _model(puzzle: Puzzle, device: str):
    """The puzzle model, loaded once per (weights file, checksum, device) in this process.

    A job asking while a warm-up thread loads the same model waits for that load.
    """

    key = (str(puzzle.weights_path), puzzle.weights_sha256, device)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _LOADING_LOCK:
        lock = _LOADING.setdefault(key, threading.Lock())
    with lock:
        model = _MODELS.get(key)
        if model is None:
            if len(_MODELS) >= 8:
                _MODELS.clear()
            model = _MODELS[key] = load_model(puzzle, device=device)
    return model


def preload_model(puzzle: Puzzle, device: str = "cpu") -> None:
    """Load the puzzle's model now (a worker warming up), so its first job does not."""
    _model(puzzle, device)


def preload_hard_set(puzzle: Puzzle, *, seed: int, device: str = "cpu") -> None:
    """Mine (and cache) the hard set for ``seed`` now, so a round's first job does not."""
    hard_set(puzzle, load_task(puzzle), _model(puzzle, device), seed=seed, device=device)


def hard_set(puzzle: Puzzle, task: Any, model: Any, *, seed: int, device: str = "cpu") -> HardSet:
    """The puzzle's hard set for ``seed``, mined from ``model`` (cached per model and seed)."""

    config = puzzle.verify
    return cached_hard_set(
        (str(puzzle.weights_path), puzzle.weights_sha256, device),
        task,
        lambda tokens: model_predictions(model, task, tokens).cpu(),
        seed=int(seed),
        pool_size=int(config.get("hardset_pool", DEFAULT_POOL)),
        size=int(config.get("hardset_size", DEFAULT_SIZE)),
    )


def _resolve_device(device: str, notes: list[str]) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        notes.append("CUDA was requested but is not available here; ran on the CPU.")
        return "cpu"
    return device or "cpu"


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
    """Verify one upload against ``puzzle``. Bad input of any kind gives a failed Verdict with
    ``error`` set; only infrastructure problems raise (``SandboxUnavailable``, missing weights).

    ``hard_seed`` (default: ``seed``) draws the hard set mined from the model; a worker passes one
    per round, so the set is mined once per round and process (then cached) while each
    submission still gets its own held-out draw from ``seed``.

    ``pool`` hands out pre-started sandboxes (one per submission); ``limits`` and ``heldout_size``
    override the puzzle's settings (tests use small ones).
    """
    started = time.perf_counter()
    notes: list[str] = []
    device = _resolve_device(device, notes)
    report = progress or (lambda stage: None)
    config = dict(puzzle.verify)
    verdict = Verdict(
        passed=False,
        device=device,
        puzzle=puzzle.slug,
        seed_kind="public" if seed is None else "secret",
        sandboxed=sandbox,
    )

    finish = functools.partial(_finish, verdict, started=started, notes=notes, report=report)

    try:
        submission = load_submission(source, filename)
        # Parsed, never run: embedded data is refused before a sandbox starts, and the sandbox
        # runs the canonical code (no comments or docstrings to carry data in).
        static = scan_source(submission.source, **limits_from_config(config))
    except SubmissionError as exc:
        verdict.error, verdict.error_kind = str(exc), "input"
        return finish()
    verdict.static = static.to_json()
    declared = causal_section.declaration(submission.source)  # format v2, read without running it
    limits = limits or SandboxLimits.from_config(config)
    report("sandbox start")
    # Start the sandbox first: it imports torch while we prepare the data and the model here.
    box = _sandbox(pool, limits, use_bwrap=sandbox)
    try:
        data = _prepare(
            puzzle,
            config,
            declared,
            device=device,
            seed=seed,
            hard_seed=hard_seed,
            heldout_size=heldout_size,
        )
        report("replication")
        outcome = _run(
            box,
            static.canonical_source,
            data,
            predict=submission.defines_predict,
            wall_seconds=limits.wall_seconds,
            report=report,
        )
    except SandboxError as exc:
        verdict.error = f"the sandbox failed ({exc}); this is not your fault, please retry"
        verdict.error_kind = "infrastructure"
        return finish()
    finally:
        box.close()
    _record_outcome(verdict, outcome, data, config=config, report=report)
    return finish(log_tail=outcome.log_tail)


@dataclass
class _Prepared:
    """What the trusted process computes while the sandbox starts: the tokens the submission
    predicts on, the model's own answers and the labels, the ablation engine, the causal plan."""

    task: Any
    engine: AblationEngine
    tokens: torch.Tensor
    model_answers: torch.Tensor
    labels: torch.Tensor
    answer_positions: list[int]
    n_heldout: int
    n_hard: int
    n_classes: int
    causal: causal_section.CausalPlan

    @property
    def k(self) -> int:
        return len(self.answer_positions)


def _prepare(
    puzzle: Puzzle,
    config: dict[str, Any],
    declared: Any,
    *,
    device: str,
    seed: int | None,
    hard_seed: int | None,
    heldout_size: int | None,
) -> _Prepared:
    task = load_task(puzzle)
    model = _model(puzzle, device)
    n_heldout = int(heldout_size or config.get("heldout_size", DEFAULT_HELDOUT_SIZE))
    heldout = task.generate(n_heldout, public_seed(puzzle) if seed is None else int(seed))
    edge = task.edge_cases()
    if hard_seed is None:
        hard_seed = public_seed(puzzle) if seed is None else seed
    hard = hard_set(puzzle, task, model, seed=hard_seed, device=device)
    tokens = torch.cat([heldout, edge, hard.tokens]).long()
    answer_positions = list(task.ANSWER_POSITIONS)
    # One cached clean run serves the model's answers and, later, every ablation variant.
    size = min(n_heldout, int(config.get("circuit_size", DEFAULT_CIRCUIT_SIZE)))
    with torch.no_grad():
        engine = AblationEngine(
            model,
            heldout[:size],
            answer_positions=answer_positions,
            ablation=str(config.get("ablation", "mean")),
            seed=int(config.get("ablation_seed", 0)),
        )
        rest = AblationEngine(model, tokens[size:], answer_positions=answer_positions)
        model_answers = torch.cat([engine.clean_logits, rest.clean_logits]).argmax(-1).cpu()
        del rest
    k = len(answer_positions)
    labels = torch.as_tensor(task.labels(tokens)).reshape(tokens.shape[0], k).long()
    causal = causal_section.prepare(
        declared, engine, task, config, seed=public_seed(puzzle) if seed is None else int(seed)
    )
    return _Prepared(
        task=task,
        engine=engine,
        tokens=tokens,
        model_answers=model_answers,
        labels=labels,
        answer_positions=answer_positions,
        n_heldout=n_heldout,
        n_hard=int(hard.tokens.shape[0]),
        n_classes=len(task.CLASSES),
        causal=causal,
    )


def _run(
    box: Sandbox,
    source: str,
    data: _Prepared,
    *,
    predict: bool,
    wall_seconds: float,
    report: Callable[[str], None],
) -> SandboxOutcome:
    """The submission's one run in its sandbox (raises SandboxError when the sandbox failed)."""
    box.wait_ready()  # already, for a pooled box; timed apart from the run itself
    report("sandbox ready")
    return box.run(
        source,
        tokens=data.tokens if predict else None,
        k=data.k,
        n_classes=data.n_classes,
        wall_seconds=wall_seconds,
        causal=data.causal.job,
    )


def _sandbox(pool: SandboxPool | None, limits: SandboxLimits, *, use_bwrap: bool) -> Sandbox:
    """A pool's box only when it is sandboxed as asked (never a bwrap-less one for bwrap)."""
    if pool is not None and pool.use_bwrap == use_bwrap:
        return pool.acquire()
    return Sandbox(limits, use_bwrap=use_bwrap)


def _record_outcome(
    verdict: Verdict,
    outcome: SandboxOutcome,
    data: _Prepared,
    *,
    config: dict[str, Any],
    report: Callable[[str], None],
) -> None:
    """The run's measurements and the checks on what it sent back."""
    checks = list(config.get("checks", ["replication", "circuit"]))
    if outcome.memory_peak_bytes is not None:
        verdict.memory_peak_mb = round(outcome.memory_peak_bytes / 2**20, 1)
    if "circuit" in checks and not outcome.failure:
        report("circuit")  # outside the try: a time limit raised here is not the submission's
    if data.causal.wanted and not outcome.failure:
        report("causal")
    try:
        _judge(verdict, outcome, data, checks=checks, config=config)
    except Exception as exc:  # noqa: BLE001 - what the submission sent broke a check
        # Everything in _judge() works on the submission's own output: a crash there is its
        # failure (counted, with a message), not the system's.
        log.exception("checking the output of a submission failed")
        verdict.checks.clear()
        verdict.passed = False
        verdict.error = (
            f"the submission's output could not be checked ({type(exc).__name__}); "
            "it counts as a failed run"
        )
        verdict.error_kind = "runtime"


def _judge(
    verdict: Verdict,
    outcome: SandboxOutcome,
    data: _Prepared,
    *,
    checks: list[str],
    config: dict[str, Any],
) -> None:
    """Fill in the verdict's checks from the sandbox's outcome."""
    if outcome.failure:
        verdict.error, verdict.error_kind = outcome.failure, "runtime"
        return
    errors = outcome.result.get("errors", {})
    if "replication" in checks:
        verdict.checks["replication"] = _replication(outcome, data, errors, config)
    if "circuit" in checks:
        verdict.checks["circuit"] = _circuit(
            outcome.result.get("circuit"), errors.get("circuit"), data.engine, data.task, config
        )
    if data.causal.wanted:
        verdict.checks["causal"] = data.causal.check(outcome, data.engine, config)
    verdict.passed = all(check.passed for check in verdict.checks.values()) and bool(verdict.checks)


def _replication(
    outcome: SandboxOutcome, data: _Prepared, errors: dict[str, str], config: dict[str, Any]
) -> CheckResult:
    if outcome.predictions is None:
        why = errors.get("predict") or "the submission defines no `predict(tokens)` function"
        return CheckResult(name="replication", passed=False, message=why)
    return replication_check(
        predictions=outcome.predictions,
        model_answers=data.model_answers,
        labels=data.labels,
        n_heldout=data.n_heldout,
        config=config,
        position_names=[f"pos {p}" for p in data.answer_positions],
        n_hard=data.n_hard,
    )


def _finish(
    verdict: Verdict,
    *,
    started: float,
    notes: list[str],
    report: Callable[[str], None],
    log_tail: str = "",
) -> Verdict:
    """The verdict's scores, report and plots, whichever way verification ended."""
    verdict.runtime_s = time.perf_counter() - started
    _fill_scores(verdict)
    verdict.report_md = render_report(verdict, log_tail=log_tail, notes=notes)
    report("report")
    try:
        verdict.plot_png = render_plot(verdict)
    except Exception as exc:  # a plot is a nicety, never a reason to lose a verdict
        notes.append(f"plot failed: {type(exc).__name__}")
    causal_section.add_plot(verdict, notes)
    verdict.runtime_s = time.perf_counter() - started
    return verdict


def _fill_scores(verdict: Verdict) -> None:
    verdict.scores = {
        name: check.score for name, check in verdict.checks.items() if check.score is not None
    }
    if verdict.static:
        verdict.scores["compactness"] = verdict.static["description_bytes"]
    for check in verdict.checks.values():
        for key in ("faithfulness", "minimality", "agreement_on_mistakes"):
            if check.details.get(key) is not None:
                verdict.scores[key] = check.details[key]
    public, private = verdict_quality(verdict)
    if public is not None:
        verdict.scores["quality_public"] = public
    if private is not None:
        verdict.scores["quality_private"] = private


def _circuit(
    entries: list[str] | None,
    error: str | None,
    engine: AblationEngine,
    task: Any,
    config: dict[str, Any],
) -> CheckResult:
    if error:
        return CheckResult(name="circuit", passed=False, message=error)
    if entries is None:
        return CheckResult(
            name="circuit", passed=False, message="the submission defines no `CIRCUIT` list"
        )
    try:
        circuit = parse_circuit(
            entries,
            n_layers=engine.n_layers,
            n_heads=engine.n_heads,
            attn_only=engine.attn_only,
            seq_len=int(task.SEQ_LEN),
            answer_positions=list(task.ANSWER_POSITIONS),
        )
    except ComponentError as exc:
        return CheckResult(name="circuit", passed=False, message=f"CIRCUIT: {exc}")
    if not circuit:
        return CheckResult(name="circuit", passed=False, message="CIRCUIT is empty")
    return circuit_check(engine, circuit, config=config)
