"""Behavioural replication, the first check of submission format v1, and the metrics the circuit
check (``circuit_check``) scores with.

Both checks compare against **the model's own predictions**, not the task labels: a submission
explains this model, mistakes included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from puzzles.verify.verdict import CheckResult, format_vs_threshold

METRICS = ("logit_diff", "accuracy", "loss")


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
