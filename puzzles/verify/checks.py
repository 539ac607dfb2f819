"""The two checks of submission format v1: behavioural replication and circuit ablation.

Both compare against **the model's own predictions**, not the task labels: a submission explains
this model, mistakes included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from puzzles.verify.ablation import AblationEngine
from puzzles.verify.components import Component
from puzzles.verify.verdict import CheckResult

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
    all_agree = predictions == model_answers
    n_easy = all_agree.shape[0] - n_hard
    agree = all_agree[:n_easy]
    overall = agree.float().mean().item()
    heldout = agree[:n_heldout].float().mean().item() if n_heldout else None
    edge = agree[n_heldout:].float().mean().item() if agree.shape[0] > n_heldout else None
    hard = all_agree[n_easy:].float().mean().item() if n_hard else None
    # Kaggle-style split for leaderboards: the public score (shown while a round is open) is the
    # first half of the held-out set plus the edge cases; the private score (revealed at closing)
    # is the second half, so tuning to the shown number does not tune to the final one.
    n_public = n_heldout // 2
    public_part = torch.cat([agree[:n_public], agree[n_heldout:]])
    public = public_part.float().mean().item() if public_part.numel() else None
    private = agree[n_public:n_heldout].float().mean().item() if n_heldout > n_public else None
    mistakes = model_answers != labels
    n_mistakes = int(mistakes.sum())
    on_mistakes = all_agree[mistakes].float().mean().item() if n_mistakes else None
    per_position = agree.float().mean(0).tolist()
    names = list(position_names or [str(i) for i in range(len(per_position))])
    exact = agree.all(-1).float().mean().item()
    task_accuracy = (predictions[:n_easy] == labels[:n_easy]).float().mean().item()
    overall_ok = overall >= threshold
    # No mistake found on this seed: nothing to match, the mistakes part cannot fail.
    mistakes_ok = on_mistakes is None or on_mistakes >= mistakes_threshold
    hard_ok = hard is None or hard >= hard_threshold
    why = f"agreement with the model {_pct(overall)} (needs {_pct(threshold)})"
    if on_mistakes is not None:
        why += f"; on the model's {n_mistakes} mistakes {_pct(on_mistakes)}"
        if mistakes_threshold > 0:
            why += f" (needs {_pct(mistakes_threshold)})"
    if hard is not None:
        why += f"; on the hard set ({n_hard} inputs mined from the model) {_pct(hard)}"
        if hard_threshold > 0:
            why += f" (needs {_pct(hard_threshold)})"
    return CheckResult(
        name="replication",
        passed=overall_ok and mistakes_ok and hard_ok,
        score=overall,
        threshold=threshold,
        message=why,
        details={
            "agreement": overall,
            "agreement_passed": overall_ok,
            "agreement_heldout": heldout,
            "agreement_edge_cases": edge,
            "agreement_hardset": hard,
            "hardset_threshold": hard_threshold,
            "hardset_passed": hard_ok,
            "n_hardset": int(n_hard),
            "agreement_public": public,
            "agreement_private": private,
            "agreement_on_mistakes": on_mistakes,
            "mistakes_threshold": mistakes_threshold,
            "mistakes_passed": mistakes_ok,
            "n_model_mistakes": n_mistakes,
            "exact_match_per_example": exact,
            "per_position": dict(zip(names, per_position, strict=False)),
            "task_accuracy_of_predict": task_accuracy,
            "n_examples": int(n_easy),
            "n_heldout": int(n_heldout),
        },
    )


def metric_per_example(logits: torch.Tensor, targets: torch.Tensor, metric: str) -> torch.Tensor:
    """``[batch]`` scores of answer logits ``[batch, k, classes]`` against target ids ``[batch, k]``.

    logit_diff: target logit minus the mean of the other logits (linear, as in MIB);
    accuracy: share of answer positions where the target is the argmax; loss: cross-entropy.
    """
    if metric == "accuracy":
        return (logits.argmax(-1) == targets).float().mean(-1)
    if metric == "loss":
        flat = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
        )
        return flat.view(targets.shape).mean(-1)
    if metric == "logit_diff":
        target = logits.gather(-1, targets[..., None]).squeeze(-1)
        n_classes = logits.shape[-1]
        others = (logits.sum(-1) - target) / max(1, n_classes - 1)
        return (target - others).float().mean(-1)
    raise ValueError(f"unknown metric {metric!r}; one of {METRICS}")


def _faithfulness(m_c: torch.Tensor, m_full: torch.Tensor, m_empty: torch.Tensor) -> float | None:
    denominator = (m_full.mean() - m_empty.mean()).item()
    if abs(denominator) < 1e-9:
        return None
    return (m_c.mean() - m_empty.mean()).item() / denominator


def circuit_check(
    engine: AblationEngine,
    circuit: Sequence[Component],
    *,
    config: dict[str, Any],
) -> CheckResult:
    """Faithfulness of CIRCUIT with everything else ablated, necessity of each entry, minimality.

    faithfulness f(C) = (m(C) - m(empty)) / (m(full) - m(empty)); necessity of c = f(C) - f(C - c);
    minimality = share of entries whose necessity exceeds ``necessity_threshold``. Per-example
    faithfulness is reported too (mean effects can hide cancelling per-example effects).
    """
    metric = str(config.get("metric", "logit_diff"))
    f_threshold = float(config.get("faithfulness_threshold", 0.8))
    min_threshold = float(config.get("minimality_threshold", 0.5))
    nec_threshold = float(config.get("necessity_threshold", DEFAULT_NECESSITY_THRESHOLD))
    targets = engine.clean_logits.argmax(-1)

    def score(components: Sequence[Component]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = engine.logits(engine.mask_for(components))
        return metric_per_example(logits, targets, metric), logits

    m_full = metric_per_example(engine.clean_logits, targets, metric)
    m_empty, _ = score([])
    m_circuit, circuit_logits = score(circuit)
    faithfulness = _faithfulness(m_circuit, m_full, m_empty)

    denominator = m_full - m_empty
    usable = denominator.abs() > 1e-6
    per_example = torch.full_like(m_full, float("nan"))
    per_example[usable] = (m_circuit - m_empty)[usable] / denominator[usable]
    valid = per_example[usable]
    if valid.numel():
        quantiles = torch.quantile(valid.float().cpu(), torch.tensor([0.1, 0.5, 0.9])).tolist()
        share_ok = (valid >= f_threshold).float().mean().item()
    else:
        quantiles, share_ok = [None, None, None], None
    agreement = (circuit_logits.argmax(-1) == targets).all(-1).float().mean().item()

    necessity: dict[str, float | None] = {}
    for i, comp in enumerate(circuit):
        m_without, _ = score([c for j, c in enumerate(circuit) if j != i])
        f_without = _faithfulness(m_without, m_full, m_empty)
        necessity[comp.name] = (
            None if faithfulness is None or f_without is None else faithfulness - f_without
        )
    needed = [v is not None and v > nec_threshold for v in necessity.values()]
    minimality = sum(needed) / len(needed) if needed else 0.0

    f_ok = faithfulness is not None and faithfulness >= f_threshold
    m_ok = minimality >= min_threshold
    parts = [f"faithfulness {_fmt(faithfulness)} (needs {f_threshold:.2f})"]
    parts.append(
        f"minimality {_pct(minimality)}: {sum(needed)} of {len(needed)} components matter "
        f"(needs {_pct(min_threshold)})"
    )
    if faithfulness is None:
        parts.insert(
            0, "ablating the whole model does not change the metric, so faithfulness is undefined"
        )
    return CheckResult(
        name="circuit",
        passed=f_ok and m_ok,
        score=faithfulness,
        threshold=f_threshold,
        message="; ".join(parts),
        details={
            "metric": metric,
            "ablation": engine.ablation,
            "circuit": [c.name for c in circuit],
            "faithfulness": faithfulness,
            "faithfulness_passed": f_ok,
            "minimality": minimality,
            "minimality_threshold": min_threshold,
            "minimality_passed": m_ok,
            "necessity": necessity,
            "necessity_threshold": nec_threshold,
            "metric_full": m_full.mean().item(),
            "metric_empty": m_empty.mean().item(),
            "metric_circuit": m_circuit.mean().item(),
            "circuit_agrees_with_model": agreement,
            "per_example_faithfulness": {
                "p10": quantiles[0],
                "median": quantiles[1],
                "p90": quantiles[2],
                "share_at_threshold": share_ok,
                "n_defined": int(valid.numel()),
                "n_examples": int(m_full.numel()),
            },
            "n_examples": int(m_full.numel()),
        },
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
