"""The two checks of submission format v1: behavioural replication and circuit ablation.

Both compare against **the model's own predictions**, not the task labels: a submission explains
this model, mistakes included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from puzzles.verify.ablation import AblationEngine, Mask
from puzzles.verify.components import Component, path_units, units
from puzzles.verify.verdict import CheckResult, format_vs_threshold

METRICS = ("logit_diff", "accuracy", "loss")
DEFAULT_NECESSITY_THRESHOLD = 0.02


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def replication_check(
    *,
    predictions: torch.Tensor,
    model_answers: torch.Tensor,
    labels: torch.Tensor,
    n_heldout: int,
    config: dict[str, Any],
    position_names: Sequence[str] | None = None,
    n_hard: int = 0,
) -> CheckResult:
    """Agreement of ``predict`` with the model: overall, on held-out / edge cases, on the hard set
    mined from the model, on the model's mistakes, and per answer position.

    Rows are ``[held-out | edge cases | hard set]`` (the last ``n_hard``); all tensors ``[n, k]`` of
    class ids. ``agreement`` (the headline) is over held-out + edge cases; the model's mistakes
    are counted over every row, most of them from the hard set. A task rule agrees with the model
    nowhere on its mistakes, so ``mistakes_threshold`` (calibrated per puzzle) is what it fails.
    """
    threshold = float(config.get("replication_threshold", 0.95))
    mistakes_threshold = float(config.get("mistakes_threshold", 0.0))
    hard_threshold = float(config.get("hardset_threshold", 0.0))
    scores = _agreement(predictions, model_answers, labels, n_heldout=n_heldout, n_hard=n_hard)
    overall = scores["agreement"]
    on_mistakes, hard = scores["agreement_on_mistakes"], scores["agreement_hardset"]
    overall_ok = overall >= threshold
    # No mistake found on this seed: nothing to match, the mistakes part cannot fail.
    mistakes_ok = on_mistakes is None or on_mistakes >= mistakes_threshold
    hard_ok = hard is None or hard >= hard_threshold
    shown, shown_threshold = format_vs_threshold(overall, threshold, percent=True)
    why = f"agreement with the model {shown} (needs {shown_threshold})"
    if on_mistakes is not None:
        shown, shown_threshold = format_vs_threshold(on_mistakes, mistakes_threshold, percent=True)
        why += f"; on the model's {scores['n_model_mistakes']} mistakes {shown}"
        if mistakes_threshold > 0:
            why += f" (needs {shown_threshold})"
    if hard is not None:
        shown, shown_threshold = format_vs_threshold(hard, hard_threshold, percent=True)
        why += f"; on the hard set ({n_hard} inputs mined from the model) {shown}"
        if hard_threshold > 0:
            why += f" (needs {shown_threshold})"
    per_position = scores["per_position"]
    names = list(position_names or [str(i) for i in range(len(per_position))])
    return CheckResult(
        name="replication",
        passed=overall_ok and mistakes_ok and hard_ok,
        score=overall,
        threshold=threshold,
        message=why,
        details={
            "agreement": overall,
            "agreement_passed": overall_ok,
            "agreement_heldout": scores["agreement_heldout"],
            "agreement_edge_cases": scores["agreement_edge_cases"],
            "agreement_hardset": hard,
            "hardset_threshold": hard_threshold,
            "hardset_passed": hard_ok,
            "n_hardset": int(n_hard),
            "agreement_public": scores["agreement_public"],
            "agreement_private": scores["agreement_private"],
            "agreement_on_mistakes": on_mistakes,
            "mistakes_threshold": mistakes_threshold,
            "mistakes_passed": mistakes_ok,
            "n_model_mistakes": scores["n_model_mistakes"],
            "exact_match_per_example": scores["exact_match_per_example"],
            "per_position": dict(zip(names, per_position, strict=False)),
            "task_accuracy_of_predict": scores["task_accuracy_of_predict"],
            "n_examples": scores["n_examples"],
            "n_heldout": int(n_heldout),
        },
    )


def _mean(agree: torch.Tensor) -> float:
    return agree.float().mean().item()


def _agreement(
    predictions: torch.Tensor,
    model_answers: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_heldout: int,
    n_hard: int,
) -> dict[str, Any]:
    """Agreement of ``predictions`` with the model on each part of the rows (None where a part is
    empty), and the counts behind them."""
    all_agree = predictions == model_answers
    n_easy = all_agree.shape[0] - n_hard
    agree = all_agree[:n_easy]
    # Kaggle-style split for leaderboards: the public score (shown while a round is open) is the
    # first half of the held-out set plus the edge cases; the private score (revealed at closing)
    # is the second half, so tuning to the shown number does not tune to the final one.
    n_public = n_heldout // 2
    public_part = torch.cat([agree[:n_public], agree[n_heldout:]])
    mistakes = model_answers != labels
    n_mistakes = int(mistakes.sum())
    return {
        "agreement": _mean(agree),
        "agreement_heldout": _mean(agree[:n_heldout]) if n_heldout else None,
        "agreement_edge_cases": _mean(agree[n_heldout:]) if agree.shape[0] > n_heldout else None,
        "agreement_hardset": _mean(all_agree[n_easy:]) if n_hard else None,
        "agreement_public": _mean(public_part) if public_part.numel() else None,
        "agreement_private": _mean(agree[n_public:n_heldout]) if n_heldout > n_public else None,
        "agreement_on_mistakes": _mean(all_agree[mistakes]) if n_mistakes else None,
        "n_model_mistakes": n_mistakes,
        "exact_match_per_example": _mean(agree.all(-1)),
        "per_position": agree.float().mean(0).tolist(),
        "task_accuracy_of_predict": _mean(predictions[:n_easy] == labels[:n_easy]),
        "n_examples": int(n_easy),
    }


def metric_per_position(logits: torch.Tensor, targets: torch.Tensor, metric: str) -> torch.Tensor:
    """``[batch, k]`` scores of answer logits ``[batch, k, classes]`` against target ids ``[batch, k]``.

    logit_diff: target logit minus the mean of the other logits (linear, as in MIB);
    accuracy: 1 where the target is the argmax; loss: cross-entropy.
    """
    if metric == "accuracy":
        return (logits.argmax(-1) == targets).float()
    if metric == "loss":
        flat = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
        )
        return flat.view(targets.shape)
    if metric == "logit_diff":
        target = logits.gather(-1, targets[..., None]).squeeze(-1)
        n_classes = logits.shape[-1]
        others = (logits.sum(-1) - target) / max(1, n_classes - 1)
        return (target - others).float()
    raise ValueError(f"unknown metric {metric!r}; one of {METRICS}")


def metric_per_example(logits: torch.Tensor, targets: torch.Tensor, metric: str) -> torch.Tensor:
    """``[batch]``: :func:`metric_per_position` averaged over the answer positions."""
    return metric_per_position(logits, targets, metric).mean(-1)


def _faithfulness(m_c: torch.Tensor, m_full: torch.Tensor, m_empty: torch.Tensor) -> float | None:
    denominator = (m_full.mean() - m_empty.mean()).item()
    if abs(denominator) < 1e-9:
        return None
    return (m_c.mean() - m_empty.mean()).item() / denominator


def _without(mask: Mask, unit: Component) -> Mask:
    out = mask.clone()
    if unit.is_mlp:
        out.mlps[unit.layer, unit.position] = False
    if "QK" in unit.paths:
        out.qk[unit.layer, unit.position, unit.head] = False
    if "OV" in unit.paths:
        out.ov[unit.layer, unit.position, unit.head] = False
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
    circuit_mask = engine.mask_for(circuit)
    m_circuit, circuit_logits = scorer.run(circuit_mask)
    faithfulness = _faithfulness(m_circuit, m_full, m_empty)
    per_example = _per_example_faithfulness(
        m_circuit, m_full, m_empty, f_threshold, share_threshold=share_threshold
    )
    circuit_agrees = (circuit_logits.argmax(-1) == scorer.targets).all(-1)
    necessity, without_logits = _entry_necessity(scorer, circuit, faithfulness, m_full, m_empty)
    unit_necessity = _unit_necessity(
        scorer, circuit, circuit_mask, without_logits, (empty_logits, circuit_logits)
    )
    minimality, n_matter, n_units = _minimality(unit_necessity, nec_threshold)
    size = sum(len(path_units(c, engine.seq)) for c in circuit)
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
) -> tuple[dict[str, float | None], dict[Component, torch.Tensor]]:
    """Each entry's necessity f(C) - f(C - c), and the logits without it (reused for its unit)."""
    necessity: dict[str, float | None] = {}
    without_logits: dict[Component, torch.Tensor] = {}  # one pass per entry
    for i, comp in enumerate(circuit):
        rest = [c for j, c in enumerate(circuit) if j != i]
        m_without, without_logits[comp] = scorer.run(scorer.engine.mask_for(rest))
        f_without = _faithfulness(m_without, m_full, m_empty)
        necessity[comp.name] = (
            None if faithfulness is None or f_without is None else faithfulness - f_without
        )
    return necessity, without_logits


def _unit_necessity(
    scorer: _Scorer,
    circuit: Sequence[Component],
    circuit_mask: Mask,
    without_logits: dict[Component, torch.Tensor],
    empty_and_circuit: tuple[torch.Tensor, torch.Tensor],
) -> dict[str, float | None]:
    """Each unit's necessity: its largest faithfulness loss at any one answer position (a head
    that computes the answer at position 7 only matters to 1/k of the mean over k positions).

    A unit in the last layer away from every answer position cannot reach the logits (its
    necessity is 0 by construction, no pass needed); the others are ablated one by one.
    """
    engine = scorer.engine
    empty_logits, circuit_logits = empty_and_circuit
    p_full = scorer.per_position(engine.clean_logits)
    p_denominator = p_full - scorer.per_position(empty_logits)
    p_usable = p_denominator.abs() > 1e-6
    p_circuit = scorer.per_position(circuit_logits)

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
                logits = engine.logits(_without(circuit_mask, unit))
                unit_necessity[unit.name] = unit_necessity_of(logits)
    return unit_necessity


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
