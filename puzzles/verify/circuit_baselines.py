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
    summary,
)
from puzzles.verify.checks import circuit_check, metric_per_example
from puzzles.verify.components import Component, all_components, all_units, units

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle


class MemoEngine(AblationEngine):
    """An :class:`AblationEngine` that runs each distinct mask once (the logits are kept for the
    engine's lifetime: one seed's circuit baselines)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memo: dict[tuple[bytes, bytes], torch.Tensor] = {}
        self.n_runs = 0

    def logits(self, mask: Mask) -> torch.Tensor:
        key = (mask.heads.cpu().numpy().tobytes(), mask.mlps.cpu().numpy().tobytes())
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
