"""One quality score per verdict, the number leaderboards rank by (after checks passed).

Raw agreement with the model rewards the task rule and a copy of the weights as much as an
explanation, so the score weighs what only understanding earns:

    quality = 0.20 A + 0.25 M + 0.20 C + 0.25 H + 0.10 K        (each term in [0, 1])

- A: agreement with the model on the held-out set (its public half while a round is open, the
  private half once it closes);
- M: agreement on the model's own mistakes (mostly the hard set mined from the model); a task
  rule scores 0 here;
- C: circuit faithfulness clipped to [0, 1] times minimality (the share of the circuit's
  components that matter), 0 without a circuit check;
- H: the causal score of a format-v2 hypothesis: its interchange intervention accuracy with all
  variables intervened together, chance-corrected (``2 IIA - 1``: balanced IIA is 0.5 for a site
  that does nothing), times the share of its claims that hold. A file that declares no variables
  (a task rule, a weight copy, any v1 file) gets 0: it explains no mechanism;
- K: compactness, ``1 / (1 + bytes / 2048)`` of the submission's description length (compressed
  normalised code) when the verdict reports one; without it the other weights are rescaled to 1.

A missing mistakes score (a seed on which the model made none) counts as A.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from puzzles.verify.verdict import CheckResult, Verdict

WEIGHTS = {
    "agreement": 0.20,
    "mistakes": 0.25,
    "circuit": 0.20,
    "causal": 0.25,
    "compactness": 0.10,
}
COMPACTNESS_SCALE_BYTES = 2048


def _clip(x: float | None) -> float:
    return 0.0 if x is None else min(1.0, max(0.0, float(x)))


def compactness_term(description_bytes: float | None) -> float | None:
    if description_bytes is None:
        return None
    return 1.0 / (1.0 + max(0.0, float(description_bytes)) / COMPACTNESS_SCALE_BYTES)


def causal_term(iia_all: float | None, claims_held: float = 1.0) -> float:
    """H: chance-corrected IIA of all variables together times the share of claims that hold."""
    return _clip(2.0 * _clip(iia_all) - 1.0) * _clip(claims_held)


def causal_score(check: CheckResult | None) -> float | None:
    """H of a verdict's causal check; None when the submission declared no variables."""
    if check is None:
        return None
    details: dict[str, Any] = check.details or {}
    statuses = [row.get("status") for row in details.get("variables", {}).values()]
    statuses += [row.get("status") for row in details.get("attention", [])]
    if details.get("all_variables"):
        statuses.append(details["all_variables"].get("status"))
    held = sum(s == "holds" for s in statuses) / len(statuses) if statuses else 0.0
    return causal_term(details.get("iia_all"), held)


def quality(
    *,
    agreement: float | None,
    on_mistakes: float | None,
    faithfulness: float | None,
    minimality: float | None,
    description_bytes: float | None = None,
    causal: float | None = None,
) -> float | None:
    """The documented quality score; None when there is no agreement to build it on.

    ``causal`` is H (:func:`causal_score`); None (no hypothesis declared) counts as 0.
    """
    if agreement is None:
        return None
    terms = {
        "agreement": _clip(agreement),
        "mistakes": _clip(agreement if on_mistakes is None else on_mistakes),
        "circuit": _clip(faithfulness) * _clip(minimality),
        "causal": _clip(causal),
    }
    k = compactness_term(description_bytes)
    if k is not None:
        terms["compactness"] = k
    total = sum(WEIGHTS[name] for name in terms)
    return sum(WEIGHTS[name] * value for name, value in terms.items()) / total


def verdict_quality(verdict: Verdict) -> tuple[float | None, float | None]:
    """(public, private) quality of a verdict: the held-out term from each half."""
    rep = verdict.checks.get("replication")
    circ = verdict.checks.get("circuit")
    details = rep.details if rep is not None else {}
    cdetails = circ.details if circ is not None else {}
    compact = verdict.scores.get("compactness") if verdict.scores else None
    if compact is None and verdict.checks.get("compactness") is not None:
        compact = verdict.checks["compactness"].score
    common = {
        "on_mistakes": details.get("agreement_on_mistakes"),
        "faithfulness": cdetails.get("faithfulness"),
        "minimality": cdetails.get("minimality"),
        "description_bytes": compact if isinstance(compact, int | float) else None,
        "causal": causal_score(verdict.checks.get("causal")),
    }
    public = quality(agreement=details.get("agreement_public"), **common)
    private = quality(agreement=details.get("agreement_private"), **common)
    return public, private
