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
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from puzzles.verify.ablation import AblationEngine
from puzzles.verify.checks import circuit_check, metric_per_example, replication_check
from puzzles.verify.components import Component, all_components, all_units, parse_circuit, units
from puzzles.verify.hardset import DEFAULT_POOL, DEFAULT_SIZE, mine_hard_set

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

CALIBRATION_SEED = 0xC1B0_2026
DEFAULT_SEEDS = 200
TARGET_PASS_RATE = 0.995
CONFIDENCE = 0.95
REPLICATION_SCORES = ("agreement", "agreement_on_mistakes", "agreement_hardset")
THRESHOLD_KEYS = {
    "agreement": "replication_threshold",
    "agreement_on_mistakes": "mistakes_threshold",
    "agreement_hardset": "hardset_threshold",
}


def calibration_seeds(n: int, master: int = CALIBRATION_SEED) -> list[int]:
    """``n`` reproducible 63-bit seeds, disjoint in practice from any server secret."""
    state = np.random.SeedSequence(master).generate_state(n, dtype=np.uint64)
    return [int(s) >> 1 for s in state]


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
    mean, sd = statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0
    return min(min(values), mean - _z(len(values)) * sd)


def upper_bound(values: Sequence[float]) -> float:
    mean, sd = statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0
    return max(max(values), mean + _z(len(values)) * sd)


def _summary(values: Sequence[float]) -> dict[str, Any]:
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


def _floor(x: float, digits: int = 3) -> float:
    return math.floor(x * 10**digits) / 10**digits


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


def _faithfulness(
    engine: AblationEngine, circuit: Sequence[Component], metric: str, m_full, m_empty
) -> float | None:
    targets = engine.clean_logits.argmax(-1)
    m_c = metric_per_example(engine.logits(engine.mask_for(circuit)), targets, metric)
    denominator = (m_full.mean() - m_empty.mean()).item()
    if abs(denominator) < 1e-9:
        return None
    return (m_c.mean() - m_empty.mean()).item() / denominator


def _circuit_scores(
    puzzle: Puzzle,
    engine: AblationEngine,
    reference: list[Component],
    rng: np.random.Generator,
    n_random: int,
) -> dict[str, Any]:
    """Faithfulness of each circuit baseline; the full circuit check (minimality too) where
    faithfulness alone would pass, since a circuit passes only if both do."""
    config = puzzle.verify
    metric = str(config.get("metric", "logit_diff"))
    f_threshold = float(config.get("faithfulness_threshold", 0.8))
    targets = engine.clean_logits.argmax(-1)
    m_full = metric_per_example(engine.clean_logits, targets, metric)
    m_empty = metric_per_example(engine.logits(engine.mask_for([])), targets, metric)
    everything = all_components(
        n_layers=engine.n_layers, n_heads=engine.n_heads, attn_only=engine.attn_only
    )

    def score(circuit: Sequence[Component]) -> dict[str, Any]:
        f = _faithfulness(engine, circuit, metric, m_full, m_empty)
        out: dict[str, Any] = {"faithfulness": f, "passed": False, "minimality": None}
        if f is not None and f >= f_threshold:
            check = circuit_check(engine, circuit, config=config)
            out.update(passed=check.passed, minimality=check.details.get("minimality"))
        return out

    result: dict[str, Any] = {
        "reference": score(reference),
        "every_component": score(everything),
        "minus": {c.name: score([d for d in reference if d != c]) for c in reference},
        "random": [],
    }
    # Random circuits of the reference's size in *units* (a head or MLP at one position), drawn
    # from every unit: with whole components, a position-restricted reference's "same size" was
    # most of the model.
    seq_len = int(engine.tokens.shape[1])
    population = all_units(
        n_layers=engine.n_layers,
        n_heads=engine.n_heads,
        attn_only=engine.attn_only,
        seq_len=seq_len,
    )
    size = min(sum(len(units(c, seq_len)) for c in reference), len(population))
    for _ in range(n_random):
        pick = rng.choice(len(population), size=size, replace=False)
        result["random"].append(score([population[i] for i in sorted(pick)]))
    return result


def calibrate(
    puzzle: Puzzle,
    *,
    n_seeds: int = DEFAULT_SEEDS,
    circuit_seeds: int | None = None,
    random_circuits: int = 5,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the reference and the baselines over ``n_seeds`` seeds and derive the thresholds.

    ``circuit_seeds`` limits the circuit baselines (the costly part) to the first seeds; the
    replication scores always use every seed. Returns the calibration.json document.
    """
    from puzzles.models import load_model, load_task

    started = time.perf_counter()
    task = load_task(puzzle)
    model = load_model(puzzle, device=device)
    reference = load_reference(puzzle)
    n_circuit = n_seeds if circuit_seeds is None else min(n_seeds, circuit_seeds)
    reference_circuit = parse_circuit(
        list(reference.CIRCUIT),
        n_layers=int(puzzle.model_config["n_layers"]),
        n_heads=int(puzzle.model_config["n_heads"]),
        attn_only=bool(puzzle.model_config.get("attn_only", False)),
        seq_len=int(task.SEQ_LEN),
    )
    seeds = calibration_seeds(n_seeds)
    rep: dict[str, dict[str, list[float]]] = {
        name: {key: [] for key in REPLICATION_SCORES} for name in ("reference", "task_rule")
    }
    weight_copy: dict[str, list[float]] = {key: [] for key in REPLICATION_SCORES}
    n_mistakes: list[int] = []
    circuits: list[dict[str, Any]] = []
    rng = np.random.default_rng(CALIBRATION_SEED)
    for i, seed in enumerate(seeds):
        data = _seed_data(puzzle, task, model, seed)
        with torch.no_grad():
            scored = {
                "reference": _replication_scores(data, reference.predict(data["tokens"])),
                "task_rule": _replication_scores(data, data["labels"]),
            }
            copy = _replication_scores(data, data["model"])
        n_mistakes.append(int(scored["reference"]["n_model_mistakes"]))
        for name, scores in scored.items():
            for key in REPLICATION_SCORES:
                if scores[key] is not None:
                    rep[name][key].append(float(scores[key]))
        for key in REPLICATION_SCORES:
            if copy[key] is not None:
                weight_copy[key].append(float(copy[key]))
        if i < n_circuit:
            size = min(data["n_heldout"], int(puzzle.verify.get("circuit_size", 1000)))
            with torch.no_grad():
                engine = AblationEngine(
                    model,
                    data["heldout"][:size],
                    answer_positions=list(task.ANSWER_POSITIONS),
                    ablation=str(puzzle.verify.get("ablation", "mean")),
                    seed=int(puzzle.verify.get("ablation_seed", 0)),
                )
                circuits.append(
                    _circuit_scores(puzzle, engine, reference_circuit, rng, random_circuits)
                )
        if progress is not None:
            progress(i + 1, n_seeds)
    doc = _thresholds(puzzle, rep, weight_copy, n_mistakes)
    doc["circuit"] = _circuit_report(puzzle, circuits, [c.name for c in reference_circuit])
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
    from puzzles.verify.causal_calibration import WRONG, calibrate_causal

    if (puzzle.path / "hypothesis.py").is_file() and puzzle.slug in WRONG:
        doc["causal"] = calibrate_causal(puzzle, n_seeds=n_seeds)
    return doc


def _thresholds(
    puzzle: Puzzle,
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
            value = _floor((ref_low + max(rule_high, 0.0)) / 2)
            why = "midpoint between the reference's lower bound and the task rule's upper bound"
        else:
            value = max(0.0, _floor(ref_low))
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
            "reference": {k: _summary(v) for k, v in rep["reference"].items()},
            "task_rule": {k: _summary(v) for k, v in rep["task_rule"].items()},
            "weight_copy": {k: _summary(v) for k, v in weight_copy.items()},
        },
        "model_mistakes_per_seed": _summary([float(n) for n in n_mistakes]),
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


def _circuit_report(
    puzzle: Puzzle, circuits: list[dict[str, Any]], reference_names: list[str]
) -> dict[str, Any]:
    """Per circuit baseline: the faithfulness distribution and how often it passes the current
    circuit thresholds (those are set by the circuit checks' own keys in puzzle.toml)."""
    if not circuits:
        return {"n_seeds": 0}

    def block(items: list[dict[str, Any]]) -> dict[str, Any]:
        f = [x["faithfulness"] for x in items if x["faithfulness"] is not None]
        k = sum(x["passed"] for x in items)
        return {
            "faithfulness": _summary(f),
            "pass_rate": k / len(items),
            "pass_rate_upper95": clopper_pearson_upper(k, len(items)),
            "pass_rate_lower95": clopper_pearson_lower(k, len(items)),
            "n": len(items),
        }

    return {
        "n_seeds": len(circuits),
        "reference_circuit": reference_names,
        "faithfulness_threshold": float(puzzle.verify.get("faithfulness_threshold", 0.8)),
        "minimality_threshold": float(puzzle.verify.get("minimality_threshold", 0.5)),
        "reference": block([c["reference"] for c in circuits]),
        "every_component": block([c["every_component"] for c in circuits]),
        "reference_minus": {
            name: block([c["minus"][name] for c in circuits]) for name in reference_names
        },
        "random_same_size": block([r for c in circuits for r in c["random"]]),
    }


def write_calibration(puzzle: Puzzle, doc: dict[str, Any], *, update_toml: bool = True) -> Path:
    """Write calibration.json beside the puzzle and, by default, the replication thresholds
    into puzzle.toml's ``[verify]`` table; the causal thresholds go there whenever their own
    section separates (``causal_calibration.toml_values``)."""
    from puzzles.training import set_toml_values
    from puzzles.verify.causal_calibration import toml_values

    path = puzzle.path / "calibration.json"
    old = load_calibration(puzzle) or {}
    if "causal" not in doc and "causal" in old:  # a run without the causal part keeps it
        doc = {**doc, "causal": old["causal"]}
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
