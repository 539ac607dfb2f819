"""The circuit baselines of a calibration: the reference ``CIRCUIT`` against every component, the
reference minus each component and random circuits of the reference's size, on one seed's
held-out inputs; and their report across seeds.

Most ablation variants these baselines need are the same ones again: a circuit check of the
reference minus ``c`` ablates ``d`` next, the check of the reference minus ``d`` ablates ``c``;
every check recomputes the empty circuit; a whole-model reference *is* every component, and a
random circuit of its size is the whole model again. :class:`MemoEngine` keeps each distinct
mask's logits for the seed, so each variant runs once, with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from puzzles.verify.ablation import AblationEngine, Mask
from puzzles.verify.calibration_stats import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    floor_to,
    lower_bound,
    summary,
    upper_bound,
)
from puzzles.verify.checks import metric_per_example
from puzzles.verify.circuit_check import circuit_check
from puzzles.verify.components import (
    Component,
    all_components,
    all_units,
    circuit_size,
    names_paths,
)

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle


class MemoEngine(AblationEngine):
    """An :class:`AblationEngine` that runs each distinct mask once (the logits are kept for the
    engine's lifetime: one seed's circuit baselines)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memo: dict[tuple[bytes, ...], torch.Tensor] = {}
        self.n_runs = 0

    def logits(self, mask: Mask) -> torch.Tensor:
        key = mask.key
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = super().logits(mask)
            self.n_runs += 1
        return out


def _faithfulness(
    engine: AblationEngine, circuit: Sequence[Component], metric: str, m_full, m_empty
) -> float | None:
    targets = engine.clean_logits.argmax(-1)
    m_c = metric_per_example(engine.logits(engine.mask_for(circuit)), targets, metric)
    denominator = (m_full.mean() - m_empty.mean()).item()
    if abs(denominator) < 1e-9:
        return None
    return (m_c.mean() - m_empty.mean()).item() / denominator


def circuit_scores(
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
    scored: dict[tuple[str, ...], dict[str, Any]] = {}  # the same circuit twice: scored once

    def score(circuit: Sequence[Component]) -> dict[str, Any]:
        key = tuple(c.name for c in circuit)
        if key in scored:
            return dict(scored[key])
        f = _faithfulness(engine, circuit, metric, m_full, m_empty)
        out: dict[str, Any] = {"faithfulness": f, "passed": False, "minimality": None}
        if f is not None and f >= f_threshold:
            check = circuit_check(engine, circuit, config=config)
            out.update(passed=check.passed, minimality=check.details.get("minimality"))
        scored[key] = out
        return dict(out)

    groups: dict[str, list[Component]] = {}  # the reference minus a head, path or MLP at all of
    for c in reference:  # its positions in the reference
        groups.setdefault(Component(c.layer, c.head, None, c.path).name, []).append(c)
    result: dict[str, Any] = {
        "reference": score(reference),
        "every_component": score(everything),
        "minus": {name: score([d for d in reference if d not in g]) for name, g in groups.items()},
        "random": [],
    }
    # Random circuits of the reference's size in *units* (a head or MLP at one position), drawn
    # from every unit: with whole components, a position-restricted reference's "same size" was
    # most of the model. A reference that names head paths is sized and drawn in paths.
    seq_len = int(engine.tokens.shape[1])
    paths = names_paths(reference)
    population = all_units(
        n_layers=engine.n_layers,
        n_heads=engine.n_heads,
        attn_only=engine.attn_only,
        seq_len=seq_len,
        paths=paths,
    )
    size = min(circuit_size(reference, seq_len, paths=paths), len(population))
    for _ in range(n_random):
        pick = rng.choice(len(population), size=size, replace=False)
        result["random"].append(score([population[i] for i in sorted(pick)]))
    return result


def circuit_report(
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
            "faithfulness": summary(f),
            "pass_rate": k / len(items),
            "pass_rate_upper95": clopper_pearson_upper(k, len(items)),
            "pass_rate_lower95": clopper_pearson_lower(k, len(items)),
            "n": len(items),
        }

    groups = {name for c in circuits for name in c["minus"]}
    return {
        "n_seeds": len(circuits),
        "reference_circuit": reference_names,
        "faithfulness": _faithfulness_threshold(circuits),
        "faithfulness_threshold": float(puzzle.verify.get("faithfulness_threshold", 0.8)),
        "minimality_threshold": float(puzzle.verify.get("minimality_threshold", 0.5)),
        "reference": block([c["reference"] for c in circuits]),
        "every_component": block([c["every_component"] for c in circuits]),
        "reference_minus": {
            name: block([c["minus"][name] for c in circuits if name in c["minus"]])
            for name in sorted(groups)
        },
        "random_same_size": block([r for c in circuits for r in c["random"]]),
    }


def _faithfulness_threshold(circuits: list[dict[str, Any]]) -> dict[str, Any]:
    """The faithfulness bar the measured distributions support: the midpoint between the
    reference's lower bound and the random circuits' upper bound, where they separate."""
    ref = [c["reference"]["faithfulness"] for c in circuits]
    rand = [r["faithfulness"] for c in circuits for r in c["random"]]
    ref = [x for x in ref if x is not None]
    rand = [x for x in rand if x is not None]
    if not ref or not rand:
        return {"value": None, "why": "no values"}
    low, high = lower_bound(ref), upper_bound(rand)
    separates = low > high
    return {
        "value": floor_to((low + high) / 2) if separates else None,
        "why": "midpoint between the reference's lower bound and the random circuits' upper bound"
        if separates
        else "the reference does not separate from random circuits of its size",
        "separates_random": separates,
        "reference_lower_bound": low,
        "random_upper_bound": high,
    }
