"""Causal thresholds from measured distributions: the reference hypothesis against wrong ones.

Over reproducible calibration seeds, the puzzle's reference hypothesis (``hypothesis.py``) and
its known wrong variants (``wrong_hypotheses.WRONG``: a variable at the wrong site, two roles
swapped, a variable the model does not compute, a false attention claim) are checked in-process.
Per kind of claim (variable IIA, scrubbing recovered, attention top-key share) the reference's
lower bound and the wrong claims' upper bound (per-seed mean -/+ z sd, never inside the worst
seed, as the replication thresholds; for the wrong claims the highest of each kind's own bound)
give the thresholds: ``holds`` is their midpoint, ``partly`` the wrong claims' upper bound (a
claim above every wrong one measured is at least partly right). Claims right in part
(``wrong_hypotheses.PARTIAL``: a variable's site missing part of where the model holds it) raise
the bar: where they sit between the two, ``holds`` is the midpoint of the reference's lower bound
and theirs. Where the reference and the wrong claims do not separate the section says so and
keeps the defaults; scrubbing keeps its default when no wrong claim has scrubbing figures,
attention when the reference claims none. Written as the ``causal`` section of calibration.json
and ``causal_*`` keys of puzzle.toml ``[verify]``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from puzzles.catalog import Puzzle
from puzzles.verify.calibration_stats import (
    calibration_seeds,
    floor_to,
    lower_bound,
    summary,
    upper_bound,
)
from puzzles.verify.causal_check import DEFAULTS
from puzzles.verify.wrong_hypotheses import PARTIAL, WRONG, mutate


def _claim_figures(check: Any) -> dict[str, list[float]]:
    d = check.details
    rows = list(d.get("variables", {}).values())
    return {
        "iia": [r["iia"] for r in rows if r.get("iia") is not None],
        "recovered": [r["recovered"] for r in rows if r.get("recovered") is not None],
        "attention": [r["top_share"] for r in d.get("attention", [])],
        "iia_all": [d["iia_all"]] if d.get("iia_all") is not None else [],
    }


def measure(puzzle: Puzzle, seeds: list[int], *, pool: int = 1000) -> dict[str, Any]:
    """Per seed: the reference's claims and each wrong hypothesis' failing claim."""
    from puzzles.models import load_task
    from puzzles.verify.ablation import AblationEngine
    from puzzles.verify.causal_section import check_trusted
    from puzzles.verify.engine import _model

    torch.set_num_threads(1)
    model, task = _model(puzzle, "cpu"), load_task(puzzle)
    reference = (puzzle.path / "hypothesis.py").read_text(encoding="utf-8")
    config = {k: v for k, v in puzzle.verify.items() if not k.startswith("causal_")}
    ref: dict[str, list[float]] = {"iia": [], "recovered": [], "attention": [], "iia_all": []}
    wrong: dict[str, list[float]] = {"iia": [], "recovered": [], "attention": []}
    partial: list[float] = []
    per_kind: dict[str, list[float]] = {}
    per_seed: list[dict[str, list[float]]] = []
    for seed in seeds:
        with torch.no_grad():
            engine = AblationEngine(
                model, task.generate(pool, seed), answer_positions=task.ANSWER_POSITIONS
            )
        figures = _claim_figures(check_trusted(reference, engine, task, config, seed=seed))
        per_seed.append(figures)
        for key, values in figures.items():
            ref[key].extend(values)
        for kind, claim, edits in WRONG.get(puzzle.slug, []):
            check = check_trusted(mutate(reference, edits), engine, task, config, seed=seed)
            if claim == "attention":
                value = check.details["attention"][0]["top_share"]
                wrong["attention"].append(value)
            else:
                row = check.details["variables"][claim]
                value = row["iia"] if row["iia"] is not None else 0.0
                wrong["iia"].append(value)
                if row.get("recovered") is not None:
                    wrong["recovered"].append(row["recovered"])
            per_kind.setdefault(kind, []).append(value)
        for kind, claim, edits in PARTIAL.get(puzzle.slug, []):
            check = check_trusted(mutate(reference, edits), engine, task, config, seed=seed)
            value = check.details["variables"][claim]["iia"] or 0.0
            partial.append(value)
            per_kind.setdefault(kind, []).append(value)
    return {
        "reference": ref,
        "wrong": wrong,
        "partial": partial,
        "wrong_by_kind": per_kind,
        "per_seed": per_seed,
    }


def _reference_passes(figures: dict[str, list[float]], t: dict[str, float]) -> bool:
    return (
        all(x >= t["causal_holds"] for x in figures["iia"] + figures["iia_all"])
        and all(x >= t["causal_scrub_holds"] for x in figures["recovered"])
        and all(x >= t["attention_holds"] for x in figures["attention"])
    )


def _pair(
    ref: list[float],
    bad: list[float],
    default_holds: float,
    default_partly: float,
    *,
    kinds: list[list[float]] | None = None,
):
    """Thresholds between the reference's lower bound and the wrong claims' upper bound. With
    ``kinds`` (the wrong values per kind of wrong hypothesis) the upper bound is the highest of the
    kinds' own: each kind is its own distribution, and pooled, a near miss and a far one made a
    spread whose bound passed 1 (caesar_easy: kinds at 0.50-0.75 and 0.04-0.08, pooled bound 1.34)."""
    if not ref or not bad:
        return {"separates": False, "holds": default_holds, "partly": default_partly}
    lo = lower_bound(ref)
    hi = max(upper_bound(k) for k in kinds if k) if kinds else upper_bound(bad)
    out = {"reference_lower_bound": lo, "wrong_upper_bound": hi, "separates": lo > hi}
    if lo > hi:
        out.update(holds=floor_to((lo + hi) / 2), partly=floor_to(hi))
    else:
        out.update(holds=default_holds, partly=default_partly)
    return out


def calibrate_causal(puzzle: Puzzle, *, n_seeds: int, pool: int = 1000) -> dict[str, Any]:
    """The ``causal`` section of calibration.json: distributions, thresholds, pass rates."""
    started = time.perf_counter()
    seeds = calibration_seeds(n_seeds)
    m = measure(puzzle, seeds, pool=pool)
    ref, bad = m["reference"], m["wrong"]
    wrong = WRONG.get(puzzle.slug, [])
    by_kind = m["wrong_by_kind"]
    iia_kinds = [by_kind[kind] for kind, claim, _ in wrong if claim != "attention"]
    attention_kinds = [by_kind[kind] for kind, claim, _ in wrong if claim == "attention"]
    iia = _pair(
        ref["iia"] + ref["iia_all"],
        bad["iia"],
        DEFAULTS["causal_holds"],
        DEFAULTS["causal_partly"],
        kinds=iia_kinds,
    )
    part = m["partial"]
    if part and iia["separates"]:  # "holds" must also need more than a claim right in part
        lo, hi = iia["reference_lower_bound"], upper_bound(part)
        iia["partial_upper_bound"] = hi
        if iia["wrong_upper_bound"] < hi < lo:
            iia["holds"] = floor_to((lo + hi) / 2)
            iia["holds_between"] = "the reference and the claims right in part"
        else:
            iia["holds_between"] = "the reference and the wrong claims (partial ones overlap)"
    att = _pair(
        ref["attention"],
        bad["attention"],
        DEFAULTS["attention_holds"],
        DEFAULTS["attention_partly"],
        kinds=attention_kinds,
    )
    if not ref["attention"]:  # nothing to calibrate: false claims meet the default bar
        att["note"] = "the reference makes no attention claim: the default bars are kept"
    # Scrubbing only demotes "holds" to "partly". Without wrong claims that have scrubbing figures
    # (their values too rare to share) there is nothing to separate from: the default stays.
    scrub = _pair(ref["recovered"], bad["recovered"], DEFAULTS["causal_scrub_holds"], 0.0)
    if not bad["recovered"]:
        scrub["note"] = "no wrong hypothesis has scrubbing figures: the default bar is kept"
    thresholds = {
        "causal_holds": iia["holds"],
        "causal_partly": iia["partly"],
        "attention_holds": att["holds"],
        "attention_partly": att["partly"],
        "causal_scrub_holds": scrub["holds"],
    }
    passes = sum(_reference_passes(f, thresholds) for f in m["per_seed"])
    wrong_values = {"iia": bad["iia"], "attention": bad["attention"]}
    wrong_holds = sum(x >= thresholds["causal_holds"] for x in wrong_values["iia"]) + sum(
        x >= thresholds["attention_holds"] for x in wrong_values["attention"]
    )
    return {
        "n_seeds": len(seeds),
        "pool": pool,
        "seconds": round(time.perf_counter() - started, 1),
        "wrong_hypotheses": [kind for kind, _, _ in WRONG.get(puzzle.slug, [])],
        "reference": {key: summary(values) for key, values in ref.items()},
        "wrong": {key: summary(values) for key, values in bad.items()},
        "partial": summary(part),
        "partial_claims": [kind for kind, _, _ in PARTIAL.get(puzzle.slug, [])],
        "partial_claims_holding": {
            "k": sum(x >= thresholds["causal_holds"] for x in part),
            "n": len(part),
        },
        "wrong_by_kind": {key: summary(values) for key, values in m["wrong_by_kind"].items()},
        "iia": iia,
        "attention": att,
        "scrubbing": scrub,
        "thresholds": thresholds,
        "reference_passes": {"k": passes, "n": len(seeds)},
        "wrong_claims_holding": {"k": wrong_holds, "n": len(bad["iia"]) + len(bad["attention"])},
    }


def toml_values(section: dict[str, Any] | None) -> dict[str, float] | None:
    """The causal thresholds to write into puzzle.toml: only when IIA separates, the reference
    holds on every calibration seed and no wrong claim holds; else None (the bar stays).

    Attention bars are written only where they were calibrated (the reference's attention claims
    and the false ones separate). A reference without attention claims keeps the default bars,
    which every false claim measured must fail (``wrong_claims_holding`` counts them)."""
    if not section:
        return None
    passes = section["reference_passes"]
    ok = section["iia"]["separates"] and passes["k"] == passes["n"]
    ok = ok and section["wrong_claims_holding"]["k"] == 0
    values = dict(section["thresholds"])
    if not section["attention"]["separates"]:
        reference_claims = section.get("reference", {}).get("attention", {}).get("n")
        ok = ok and not (reference_claims and section["wrong"]["attention"].get("n"))
        values.pop("attention_holds", None)
        values.pop("attention_partly", None)
    return values if ok else None
