"""``calibrate``: thresholds from measured score distributions, never hand-picked.

For one puzzle, over N secret-style seeds (derived from a fixed calibration seed, so the run is
reproducible but shares nothing with the server's secret), score the reference solution and the
baselines a pass must exclude, in-process (trusted code only: the shipped reference and
baselines generated here):

- replication: the reference ``predict``; the task rule (``task.labels``); a weight copy (the
  model's own answers: it passes every replication score by construction, and only the static
  literal-data bound on submissions can refuse it, so it is reported, not thresholded);
- circuit: the reference ``CIRCUIT``; every component; the reference minus each component; random
  circuits of the reference's size.

Replication thresholds come from confidence bounds: the reference's lower bound is its per-seed
mean minus ``z`` standard deviations (``z`` the 99.5% normal quantile, the deviation inflated for
being estimated from N seeds) and never above its worst observed seed; a baseline's upper bound is
the mirror image and never below its best seed. Where the two bounds are apart, the threshold is
their midpoint (margin both ways); where they are not, the score cannot separate the reference
from that baseline and the report says so. The pass rates at the chosen thresholds come with
one-sided 95% Clopper-Pearson bounds. Everything lands in ``calibration.json`` beside the puzzle.
The bounds live in ``calibration_stats`` (shared with ``causal_calibration``), the circuit
baselines in ``circuit_baselines``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from puzzles.verify.ablation import AblationEngine
from puzzles.verify.calibration_stats import (
    CALIBRATION_SEED,
    CONFIDENCE,
    TARGET_PASS_RATE,
    calibration_seeds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    floor_to,
    lower_bound,
    summary,
    upper_bound,
)
from puzzles.verify.causal_calibration import calibrate_causal, toml_values
from puzzles.verify.checks import replication_check
from puzzles.verify.circuit_baselines import MemoEngine, circuit_report, circuit_scores
from puzzles.verify.components import Component, parse_circuit
from puzzles.verify.hardset import DEFAULT_POOL, DEFAULT_SIZE, mine_hard_set
from puzzles.verify.wrong_hypotheses import WRONG

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

__all__ = [
    "CALIBRATION_SEED",
    "calibrate",
    "calibration_seeds",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "load_calibration",
    "load_reference",
    "model_answers",
    "write_calibration",
]

DEFAULT_SEEDS = 200
REPLICATION_SCORES = ("agreement", "agreement_on_mistakes", "agreement_hardset")
THRESHOLD_KEYS = {
    "agreement": "replication_threshold",
    "agreement_on_mistakes": "mistakes_threshold",
    "agreement_hardset": "hardset_threshold",
}


def model_answers(
    model: Any, task: Any, tokens: torch.Tensor, *, chunk: int = 4096
) -> torch.Tensor:
    """The model's answers ``[n, k]`` through the ablation engine's plain forward (fast path)."""
    out = []
    with torch.no_grad():
        for start in range(0, tokens.shape[0], chunk):
            engine = AblationEngine(
                model, tokens[start : start + chunk], answer_positions=list(task.ANSWER_POSITIONS)
            )
            out.append(engine.clean_logits.argmax(-1).cpu())
    return torch.cat(out)


def load_reference(puzzle: Puzzle) -> Any:
    """The puzzle's shipped solution.py as a module (trusted: it ships with the catalog)."""
    spec = importlib.util.spec_from_file_location(f"_reference_{puzzle.slug}", puzzle.solution_path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(puzzle.solution_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seed_data(puzzle: Puzzle, task: Any, model: Any, seed: int) -> dict[str, Any]:
    config = puzzle.verify
    n_heldout = int(config.get("heldout_size", 2000))
    heldout = torch.as_tensor(task.generate(n_heldout, seed)).long()
    edge = torch.as_tensor(task.edge_cases()).long()

    def answers(tokens: torch.Tensor) -> torch.Tensor:
        return model_answers(model, task, tokens)

    hard = mine_hard_set(
        task,
        answers,
        seed=seed,
        pool_size=int(config.get("hardset_pool", DEFAULT_POOL)),
        size=int(config.get("hardset_size", DEFAULT_SIZE)),
    )
    tokens = torch.cat([heldout, edge, hard.tokens])
    model_out = answers(tokens)
    labels = torch.as_tensor(task.labels(tokens)).reshape(model_out.shape).long()
    return {
        "heldout": heldout,
        "tokens": tokens,
        "model": model_out,
        "labels": labels,
        "n_heldout": n_heldout,
        "n_hard": int(hard.tokens.shape[0]),
    }


def _replication_scores(data: dict[str, Any], predictions: torch.Tensor) -> dict[str, float | None]:
    result = replication_check(
        predictions=predictions.reshape(data["model"].shape).long(),
        model_answers=data["model"],
        labels=data["labels"],
        n_heldout=data["n_heldout"],
        config={},
        n_hard=data["n_hard"],
    )
    return {key: result.details[key] for key in (*REPLICATION_SCORES, "n_model_mistakes")}


def _reference_circuit(puzzle: Puzzle, task: Any, reference: Any) -> list[Component]:
    return parse_circuit(
        list(reference.CIRCUIT),
        n_layers=int(puzzle.model_config["n_layers"]),
        n_heads=int(puzzle.model_config["n_heads"]),
        attn_only=bool(puzzle.model_config.get("attn_only", False)),
        seq_len=int(task.SEQ_LEN),
    )


class _Replication:
    """Per-seed replication scores of the reference, the task rule and the weight copy."""

    def __init__(self) -> None:
        self.rep: dict[str, dict[str, list[float]]] = {
            name: {key: [] for key in REPLICATION_SCORES} for name in ("reference", "task_rule")
        }
        self.weight_copy: dict[str, list[float]] = {key: [] for key in REPLICATION_SCORES}
        self.n_mistakes: list[int] = []

    def add(self, data: dict[str, Any], reference: Any) -> None:
        with torch.no_grad():
            scored = {
                "reference": _replication_scores(data, reference.predict(data["tokens"])),
                "task_rule": _replication_scores(data, data["labels"]),
            }
            copy = _replication_scores(data, data["model"])
        self.n_mistakes.append(int(scored["reference"]["n_model_mistakes"] or 0))
        for name, scores in scored.items():
            for key in REPLICATION_SCORES:
                if (value := scores[key]) is not None:
                    self.rep[name][key].append(float(value))
        for key in REPLICATION_SCORES:
            if (value := copy[key]) is not None:
                self.weight_copy[key].append(float(value))


def _seed_circuits(
    puzzle: Puzzle,
    task: Any,
    model: Any,
    data: dict[str, Any],
    reference_circuit: list[Component],
    rng: np.random.Generator,
    n_random: int,
) -> dict[str, Any]:
    """The circuit baselines on this seed's held-out inputs (the check's ``circuit_size``)."""
    size = min(data["n_heldout"], int(puzzle.verify.get("circuit_size", 1000)))
    with torch.no_grad():
        engine = MemoEngine(
            model,
            data["heldout"][:size],
            answer_positions=list(task.ANSWER_POSITIONS),
            ablation=str(puzzle.verify.get("ablation", "mean")),
            seed=int(puzzle.verify.get("ablation_seed", 0)),
        )
        return circuit_scores(puzzle, engine, reference_circuit, rng, n_random)


def calibrate(
    puzzle: Puzzle,
    *,
    n_seeds: int = DEFAULT_SEEDS,
    circuit_seeds: int | None = None,
    random_circuits: int = 5,
    device: str = "cpu",
    causal: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the reference and the baselines over ``n_seeds`` seeds and derive the thresholds.

    ``circuit_seeds`` limits the circuit baselines (the costly part) to the first seeds; the
    replication scores always use every seed. ``causal=False`` leaves out the causal section
    (``write_calibration`` then keeps the one on file). Returns the calibration.json document.
    """
    from puzzles.models import load_model, load_task

    started = time.perf_counter()
    # One thread: these models are small, and a second thread only spins on a shared box (the
    # same numbers, measured 5.9x the CPU time and 4.7x the wall time on palindromes).
    torch.set_num_threads(1)
    task = load_task(puzzle)
    model = load_model(puzzle, device=device)
    reference = load_reference(puzzle)
    n_circuit = n_seeds if circuit_seeds is None else min(n_seeds, circuit_seeds)
    reference_circuit = _reference_circuit(puzzle, task, reference)
    replication = _Replication()
    circuits: list[dict[str, Any]] = []
    rng = np.random.default_rng(CALIBRATION_SEED)
    for i, seed in enumerate(calibration_seeds(n_seeds)):
        data = _seed_data(puzzle, task, model, seed)
        replication.add(data, reference)
        if i < n_circuit:
            circuits.append(
                _seed_circuits(puzzle, task, model, data, reference_circuit, rng, random_circuits)
            )
        if progress is not None:
            progress(i + 1, n_seeds)
    doc = _thresholds(replication.rep, replication.weight_copy, replication.n_mistakes)
    doc["circuit"] = circuit_report(puzzle, circuits, [c.name for c in reference_circuit])
    if causal and (puzzle.path / "hypothesis.py").is_file() and puzzle.slug in WRONG:
        doc["causal"] = calibrate_causal(puzzle, n_seeds=n_seeds)
    doc.update(
        slug=puzzle.slug,
        weights_sha256=puzzle.weights_sha256,
        n_seeds=n_seeds,
        calibration_seed=CALIBRATION_SEED,
        device=device,
        seconds=round(time.perf_counter() - started, 1),
        target_pass_rate=TARGET_PASS_RATE,
        confidence=CONFIDENCE,
    )
    return doc


def calibrate_circuits(
    puzzle: Puzzle,
    *,
    n_seeds: int,
    random_circuits: int = 5,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Only the circuit baselines, on the first ``n_seeds`` calibration seeds (the same inputs
    and random circuits as a full run's): calibration.json's ``circuit`` section, for a changed
    ``CIRCUIT`` without rerunning replication."""
    from puzzles.models import load_model, load_task

    torch.set_num_threads(1)
    task = load_task(puzzle)
    model = load_model(puzzle, device=device)
    reference_circuit = _reference_circuit(puzzle, task, load_reference(puzzle))
    n_heldout = int(puzzle.verify.get("heldout_size", 2000))
    rng = np.random.default_rng(CALIBRATION_SEED)
    circuits = []
    for i, seed in enumerate(calibration_seeds(n_seeds)):
        heldout = torch.as_tensor(task.generate(n_heldout, seed)).long()
        data = {"heldout": heldout, "n_heldout": n_heldout}
        circuits.append(
            _seed_circuits(puzzle, task, model, data, reference_circuit, rng, random_circuits)
        )
        if progress is not None:
            progress(i + 1, n_seeds)
    return circuit_report(puzzle, circuits, [c.name for c in reference_circuit])


def _thresholds(
    rep: dict[str, dict[str, list[float]]],
    weight_copy: dict[str, list[float]],
    n_mistakes: list[int],
) -> dict[str, Any]:
    thresholds: dict[str, Any] = {}
    for key in REPLICATION_SCORES:
        ref = rep["reference"][key]
        rule = rep["task_rule"][key]
        if not ref:
            thresholds[THRESHOLD_KEYS[key]] = {"value": 0.0, "why": "no values (no mistakes)"}
            continue
        ref_low = lower_bound(ref)
        rule_high = upper_bound(rule) if rule else -math.inf
        separates = ref_low > rule_high
        if separates:
            value = floor_to((ref_low + max(rule_high, 0.0)) / 2)
            why = "midpoint between the reference's lower bound and the task rule's upper bound"
        else:
            value = max(0.0, floor_to(ref_low))
            why = "the reference's lower bound (this score does not separate it from the task rule)"
        ref_pass = sum(v >= value for v in ref)
        rule_pass = sum(v >= value for v in rule)
        thresholds[THRESHOLD_KEYS[key]] = {
            "score": key,
            "value": value,
            "why": why,
            "separates_task_rule": separates,
            "reference_lower_bound": ref_low,
            "task_rule_upper_bound": None if not rule else rule_high,
            "margin_reference": min(ref) - value,
            "margin_task_rule": None if not rule else value - max(rule),
            "reference_pass_rate": ref_pass / len(ref),
            "reference_pass_rate_lower95": clopper_pearson_lower(ref_pass, len(ref)),
            "task_rule_pass_rate": rule_pass / len(rule) if rule else None,
            "task_rule_pass_rate_upper95": clopper_pearson_upper(rule_pass, len(rule))
            if rule
            else None,
        }
    values = {name: entry["value"] for name, entry in thresholds.items()}
    ref_ok = _pass_vector(rep["reference"], values)
    rule_ok = _pass_vector(rep["task_rule"], values)
    copy_ok = _pass_vector(weight_copy, values)
    return {
        "thresholds": thresholds,
        "scores": {
            "reference": {k: summary(v) for k, v in rep["reference"].items()},
            "task_rule": {k: summary(v) for k, v in rep["task_rule"].items()},
            "weight_copy": {k: summary(v) for k, v in weight_copy.items()},
        },
        "model_mistakes_per_seed": summary([float(n) for n in n_mistakes]),
        "replication": {
            "reference_pass_rate": sum(ref_ok) / len(ref_ok),
            "reference_pass_rate_lower95": clopper_pearson_lower(sum(ref_ok), len(ref_ok)),
            "task_rule_pass_rate": sum(rule_ok) / len(rule_ok),
            "task_rule_pass_rate_upper95": clopper_pearson_upper(sum(rule_ok), len(rule_ok)),
            "weight_copy_pass_rate": sum(copy_ok) / len(copy_ok),
            "weight_copy_note": (
                "a weight copy is the model: it replicates perfectly, so replication cannot "
                "refuse it; the static literal-data bound on submissions does"
            ),
        },
    }


def _pass_vector(scores: dict[str, list[float]], values: dict[str, float]) -> list[bool]:
    """Per seed: every replication score at or above its threshold. Seeds without mistakes have
    no mistakes score; those pass that part, as the check does."""
    n = len(scores["agreement"])
    out = []
    mistakes = iter(scores["agreement_on_mistakes"])
    has_mistakes = len(scores["agreement_on_mistakes"]) == n
    for i in range(n):
        ok = scores["agreement"][i] >= values["replication_threshold"]
        if has_mistakes:
            ok = ok and next(mistakes) >= values["mistakes_threshold"]
        if i < len(scores["agreement_hardset"]):
            ok = ok and scores["agreement_hardset"][i] >= values["hardset_threshold"]
        out.append(ok)
    return out


def write_calibration(puzzle: Puzzle, doc: dict[str, Any], *, update_toml: bool = True) -> Path:
    """Write calibration.json beside the puzzle and, by default, the replication thresholds
    into puzzle.toml's ``[verify]`` table; the causal thresholds go there whenever their own
    section separates (``causal_calibration.toml_values``)."""
    from puzzles.training import set_toml_values

    path = puzzle.path / "calibration.json"
    old = load_calibration(puzzle) or {}
    if "causal" not in doc and "causal" in old:  # a run without the causal part keeps it
        doc = {**doc, "causal": old["causal"]}
    if "thresholds" not in doc:  # a circuit-only run keeps the replication part
        doc = {**old, **doc}
        update_toml = False
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n", encoding="utf-8")
    toml_path = puzzle.path / "puzzle.toml"
    causal = toml_values(doc.get("causal"))
    if causal:
        toml_path.write_text(
            set_toml_values(toml_path.read_text(encoding="utf-8"), "verify", causal),
            encoding="utf-8",
        )
    if update_toml:
        values = {key: entry["value"] for key, entry in doc["thresholds"].items()}
        toml_path.write_text(
            set_toml_values(toml_path.read_text(encoding="utf-8"), "verify", values),
            encoding="utf-8",
        )
    return path


def load_calibration(puzzle: Puzzle) -> dict[str, Any] | None:
    path = puzzle.path / "calibration.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
