"""The circuit check of submission format v1: CIRCUIT with everything else ablated.

Scored against **the model's own predictions**, like replication: faithfulness (MIB), each
entry's and each unit's necessity, minimality, per-example faithfulness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from puzzles.verify.ablation import AblationEngine, Mask
from puzzles.verify.checks import metric_per_example, metric_per_position
from puzzles.verify.components import Component, circuit_size, units
from puzzles.verify.verdict import CheckResult, format_vs_threshold

DEFAULT_NECESSITY_THRESHOLD = 0.02


def _faithfulness(m_c: torch.Tensor, m_full: torch.Tensor, m_empty: torch.Tensor) -> float | None:
    denominator = (m_full.mean() - m_empty.mean()).item()
    if abs(denominator) < 1e-9:
        return None
    return (m_c.mean() - m_empty.mean()).item() / denominator


def _without(mask: Mask, unit: Component) -> Mask:
    """``mask`` without ``unit`` (at every position when it has none)."""
    out = mask.clone()
    where = slice(None) if unit.position is None else unit.position
    if unit.is_mlp:
        out.mlps[unit.layer, where] = False
    if "QK" in unit.paths:
        out.qk[unit.layer, where, unit.head] = False
    if "OV" in unit.paths:
        out.ov[unit.layer, where, unit.head] = False
    return out


def circuit_check(
    engine: AblationEngine,
    circuit: Sequence[Component],
    *,
    config: dict[str, Any],
) -> CheckResult:
    """Faithfulness of CIRCUIT with everything else ablated, necessity of each entry, minimality.

    faithfulness f(C) = (m(C) - m(empty)) / (m(full) - m(empty)) (MIB); necessity of c =
    f(C) - f(C - c). Minimality: the share of the circuit's *units* (a component at one position)
    whose necessity exceeds ``necessity_threshold`` (a padded circuit fails) and, where every unit
    of the model matters a little, a size bound ``max_circuit_units`` in head paths (a whole head
    at a position is two), so every component cannot pass as minimal there. Per-example
    faithfulness is reported with counts (mean effects can hide cancelling ones, causal
    scrubbing's warning); ``faithful_share_threshold`` (optional) requires a share faithful."""
    metric = str(config.get("metric", "logit_diff"))
    f_threshold = float(config.get("faithfulness_threshold", 0.8))
    min_threshold = float(config.get("minimality_threshold", 0.5))
    nec_threshold = float(config.get("necessity_threshold", DEFAULT_NECESSITY_THRESHOLD))
    share_threshold = config.get("faithful_share_threshold")
    max_size = None if config.get("max_circuit_units") is None else int(config["max_circuit_units"])
    scorer = _Scorer(engine, metric, engine.clean_logits.argmax(-1))
    m_full = scorer.per_example(engine.clean_logits)
    empty_logits = engine.logits(engine.mask_for([]))
    m_empty = scorer.per_example(empty_logits)
    m_circuit, circuit_logits = scorer.run(circuit_mask := engine.mask_for(circuit))
    faithfulness = _faithfulness(m_circuit, m_full, m_empty)
    per_example = _per_example_faithfulness(
        m_circuit, m_full, m_empty, f_threshold, share_threshold=share_threshold
    )
    circuit_agrees = (circuit_logits.argmax(-1) == scorer.targets).all(-1)
    last_layer = _LastLayer(engine, circuit_mask, circuit_logits)
    necessity, without_logits = _entry_necessity(
        scorer, circuit, faithfulness, m_full, m_empty, last_layer
    )
    unit_necessity = _unit_necessity(scorer, circuit, last_layer, without_logits, empty_logits)
    minimality, n_matter, n_units = _minimality(unit_necessity, nec_threshold)
    size = circuit_size(circuit, engine.seq, paths=True)
    f_ok = faithfulness is not None and faithfulness >= f_threshold
    m_ok = minimality >= min_threshold and (max_size is None or size <= max_size)
    s_ok = per_example["share_passed"]
    message = _circuit_message(
        faithfulness=(faithfulness, f_threshold),
        minimality=(minimality, min_threshold),
        n_matter=n_matter,
        n_units=n_units,
        per_example=per_example,
        size=(size, max_size),
    )
    return CheckResult(
        name="circuit",
        passed=f_ok and m_ok and s_ok,
        score=faithfulness,
        threshold=f_threshold,
        message=message,
        details={
            "metric": metric,
            "ablation": engine.ablation,
            "circuit": [c.name for c in circuit],
            "faithfulness": faithfulness,
            "faithfulness_passed": f_ok,
            "minimality": minimality,
            "minimality_threshold": min_threshold,
            "minimality_passed": m_ok,
            "n_units": n_units,
            "n_units_that_matter": n_matter,
            "n_path_units": size,
            "max_circuit_units": max_size,
            "necessity": necessity,
            "unit_necessity": unit_necessity if len(unit_necessity) <= 400 else None,
            "necessity_threshold": nec_threshold,
            "metric_full": m_full.mean().item(),
            "metric_empty": m_empty.mean().item(),
            "metric_circuit": m_circuit.mean().item(),
            "circuit_agrees_with_model": circuit_agrees.float().mean().item(),
            "n_examples_circuit_agrees": int(circuit_agrees.sum()),
            "per_example_faithfulness": per_example,
            "n_examples": int(m_full.numel()),
        },
    )


def _circuit_message(
    *,
    faithfulness: tuple[float | None, float],
    minimality: tuple[float, float],
    n_matter: int,
    n_units: int,
    per_example: dict[str, Any],
    size: tuple[int, int | None],
) -> str:
    """The circuit check's sentence: each score against what it needs."""
    shown_f, shown_ft = format_vs_threshold(*faithfulness, digits=2)
    shown_m, shown_mt = format_vs_threshold(*minimality, percent=True, digits=0)
    parts = [f"faithfulness {shown_f} (needs {shown_ft})"]
    parts.append(
        f"minimality {shown_m}: {n_matter} of {n_units} units (component at a position) "
        f"matter (needs {shown_mt})"
    )
    if size[1] is not None:
        verb = "within" if size[0] <= size[1] else "over"
        parts.append(
            f"size {size[0]} head paths and MLPs at positions, {verb} this puzzle's {size[1]}"
        )
    share_threshold = per_example["share_threshold"]
    if share_threshold is not None:
        share = per_example["share_at_threshold"]
        shown_s, shown_st = format_vs_threshold(share, float(share_threshold), percent=True)
        parts.append(
            f"{per_example['n_faithful']} of {per_example['n_defined']} examples faithful: "
            f"{shown_s} (needs {shown_st})"
        )
    if faithfulness[0] is None:
        parts.insert(
            0, "ablating the whole model does not change the metric, so faithfulness is undefined"
        )
    return "; ".join(parts)


@dataclass
class _Scorer:
    """The circuit check's metric against the model's own answers (``targets``)."""

    engine: AblationEngine
    metric: str
    targets: torch.Tensor

    def per_example(self, logits: torch.Tensor) -> torch.Tensor:
        return metric_per_example(logits, self.targets, self.metric)

    def per_position(self, logits: torch.Tensor) -> torch.Tensor:
        """``[k]``: the metric at each answer position, averaged over the examples."""
        return metric_per_position(logits, self.targets, self.metric).mean(0)

    def run(self, mask: Mask) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.engine.logits(mask)
        return self.per_example(logits), logits


class _LastLayer:
    """The circuit's logits without one last-layer unit, from one pass per component.

    A last-layer unit at query position p changes only the logits at p (nothing after it reads
    p's stream), so the circuit without that component at *every* position, read at p and spliced
    into the circuit's logits, is exactly the circuit without the unit: one pass serves all the
    component's positions (caesar_easy's 96 units: 5 passes)."""

    def __init__(self, engine: AblationEngine, circuit_mask: Mask, circuit_logits: torch.Tensor):
        self.engine, self.mask, self.circuit_logits = engine, circuit_mask, circuit_logits
        self.index = {p: i for i, p in enumerate(engine.answer_positions.tolist())}
        self._passes: dict[tuple[int, int | None, str | None], torch.Tensor] = {}

    def logits_without(self, unit: Component) -> torch.Tensor | None:
        """None where the identity does not hold (not a last-layer unit at an answer)."""
        if unit.layer != self.engine.n_layers - 1 or unit.position not in self.index:
            return None
        key = (unit.layer, unit.head, unit.path)
        if key not in self._passes:
            self._passes[key] = self.engine.logits(_without(self.mask, unit.at(None)))
        i = self.index[unit.position]
        out = self.circuit_logits.clone()
        out[:, i] = self._passes[key][:, i]
        return out


def _per_example_faithfulness(
    m_circuit: torch.Tensor,
    m_full: torch.Tensor,
    m_empty: torch.Tensor,
    f_threshold: float,
    *,
    share_threshold: Any,
) -> dict[str, Any]:
    """Faithfulness example by example (mean effects can hide cancelling per-example effects):
    quantiles and the share of examples at the threshold, over the examples where it is defined;
    passed when no ``share_threshold`` is asked or the share reaches it."""
    denominator = m_full - m_empty
    usable = denominator.abs() > 1e-6
    per_example = torch.full_like(m_full, float("nan"))
    per_example[usable] = (m_circuit - m_empty)[usable] / denominator[usable]
    valid = per_example[usable]
    n_faithful = int((valid >= f_threshold).sum()) if valid.numel() else 0
    quantiles: list[float | None] = [None, None, None]
    share: float | None = None
    if valid.numel():
        quantiles = torch.quantile(valid.float().cpu(), torch.tensor([0.1, 0.5, 0.9])).tolist()
        share = n_faithful / valid.numel()
    return {
        "p10": quantiles[0],
        "median": quantiles[1],
        "p90": quantiles[2],
        "share_at_threshold": share,
        "n_faithful": n_faithful,
        "n_defined": int(valid.numel()),
        "n_examples": int(m_full.numel()),
        "share_threshold": share_threshold,
        "share_passed": share_threshold is None
        or (share is not None and share >= float(share_threshold)),
    }


def _minimality(
    unit_necessity: dict[str, float | None], threshold: float
) -> tuple[float, int, int]:
    """(share of units that matter, how many matter, how many units)."""
    matter = [v is not None and v > threshold for v in unit_necessity.values()]
    n_matter = sum(matter)
    return (n_matter / len(matter) if matter else 0.0), n_matter, len(matter)


def _entry_necessity(
    scorer: _Scorer,
    circuit: Sequence[Component],
    faithfulness: float | None,
    m_full: torch.Tensor,
    m_empty: torch.Tensor,
    last_layer: _LastLayer,
) -> tuple[dict[str, float | None], dict[Component, torch.Tensor]]:
    """Each entry's necessity f(C) - f(C - c), and the logits without it (reused for its unit):
    one pass per entry, but a single last-layer unit's come from its component's pass."""
    necessity: dict[str, float | None] = {}
    without_logits: dict[Component, torch.Tensor] = {}
    for i, comp in enumerate(circuit):
        rest = scorer.engine.mask_for([c for j, c in enumerate(circuit) if j != i])
        spliced = None
        if comp.position is not None and rest.key == _without(last_layer.mask, comp).key:
            spliced = last_layer.logits_without(comp)
        if spliced is None:
            m_without, without_logits[comp] = scorer.run(rest)
        else:
            m_without, without_logits[comp] = scorer.per_example(spliced), spliced
        f_without = _faithfulness(m_without, m_full, m_empty)
        necessity[comp.name] = (
            None if faithfulness is None or f_without is None else faithfulness - f_without
        )
    return necessity, without_logits


def _unit_necessity(
    scorer: _Scorer,
    circuit: Sequence[Component],
    last_layer: _LastLayer,
    without_logits: dict[Component, torch.Tensor],
    empty_logits: torch.Tensor,
) -> dict[str, float | None]:
    """Each unit's necessity: its largest faithfulness loss at any one answer position (a head
    that computes the answer at position 7 only matters to 1/k of the mean over k positions).

    A unit in the last layer away from every answer position cannot reach the logits (its
    necessity is 0 by construction, no pass needed); the others are ablated one by one.
    """
    engine = scorer.engine
    p_full = scorer.per_position(engine.clean_logits)
    p_denominator = p_full - scorer.per_position(empty_logits)
    p_usable = p_denominator.abs() > 1e-6
    p_circuit = scorer.per_position(last_layer.circuit_logits)

    def unit_necessity_of(logits: torch.Tensor) -> float | None:
        if not bool(p_usable.any()):
            return None
        lost = (p_circuit - scorer.per_position(logits))[p_usable] / p_denominator[p_usable]
        return float(lost.max())

    last = engine.n_layers - 1
    answers = set(engine.answer_positions.tolist())
    unit_necessity: dict[str, float | None] = {}
    for comp in circuit:
        if comp.is_mlp and engine.attn_only:
            continue
        for unit in units(comp, engine.seq):
            if unit.layer == last and unit.position not in answers:
                unit_necessity[unit.name] = 0.0
            elif comp.position is not None:
                unit_necessity[unit.name] = unit_necessity_of(without_logits[comp])
            else:
                logits = last_layer.logits_without(unit)
                if logits is None:
                    logits = engine.logits(_without(last_layer.mask, unit))
                unit_necessity[unit.name] = unit_necessity_of(logits)
    return unit_necessity
