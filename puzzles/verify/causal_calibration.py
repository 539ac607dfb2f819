"""Causal thresholds from measured distributions: the reference hypothesis against wrong ones.

Over reproducible calibration seeds, the puzzle's reference hypothesis (``hypothesis.py``) and
its known wrong variants (:data:`WRONG`: a variable at the wrong site, two roles swapped, a
variable the model does not compute, a false attention claim) are checked in-process. Per kind of
claim (variable IIA, scrubbing recovered, attention top-key share) the reference's lower bound
and the wrong claims' upper bound (per-seed mean -/+ z sd, never inside the worst seed, as the
replication thresholds; for the wrong claims the highest of each kind's own bound) give the
thresholds: ``holds`` is their midpoint, ``partly`` the wrong claims' upper bound (a claim above
every wrong one measured is at least partly right). Claims right in part (:data:`PARTIAL`: a
variable's site missing part of where the model holds it) raise the bar: where they sit between
the two, ``holds`` is the midpoint of the reference's lower bound and theirs. Where the reference
and the wrong claims do not separate the section says so and keeps the defaults; scrubbing keeps
its default when no wrong claim has scrubbing figures, attention when the reference claims none.
Written as the ``causal`` section of calibration.json and ``causal_*`` keys of puzzle.toml
``[verify]``.
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

Edit = tuple[str, str]
# Wrong hypotheses per puzzle: (kind, the claim that must fail, text edits of hypothesis.py).
# Tests use the same list, so calibration measures what the tests assert.
_PAL_MIRROR = '"site": "L0H0@11..20",'
_PAL_DECISION = '"site": ["L1H0@END", "L1H1@END"],'
_FDS = {
    k: f'"site": [{s}],'
    for k, s in {
        0: '"resid_post L0 @ 5", "L0H0@9", "L0H2@9", "L0H0@10", "L0H1@10", "L0H2@10"',
        1: '"resid_post L0 @ 6", "L0H1@9", "L0H0@11", "L0H2@11"',
        2: '"resid_post L0 @ 7", "L0H1@11", "L0H1@12", "L0H2@12"',
        3: '"resid_post L0 @ 8", "L0H0@12", "L0H0@13", "L0H2@13"',
    }.items()
}
_SL_FIRST = '"site": ["L0H0@10", "L0H1@10"],'
_SL_SUCC = '"site": ["L0H0@11..19", "L0H1@11..19"],'
_SL_ANSWER = '    "answer": {"from": ["first", "successors"]},\n'
_CE_LETTERS = '"site": ["L0H0@0..23", "L0H1@0..23"],'
_CE_ANSWER = '    "answer": {"from": ["shift"]},\n'
_FU_LETTERS = '"site": ["L0H0", "L0H1", "L0H2"],'
_FU_ROLES = "chars, letters = tokens[:, 1:], letters.long()"
_FU_ANSWER = '    "answer": {"from": ["tokens", "letters"]},\n'
_CS_ANSWER = '    "answer": {"from": ["running_mean"]},\n'
WRONG: dict[str, list[tuple[str, str, list[Edit]]]] = {
    "palindromes": [
        ("wrong-site", "mirror", [(_PAL_MIRROR, '"site": "L1H0@11..20",')]),
        (
            "roles-swapped",
            "mirror",
            [(_PAL_MIRROR, "@@X@@"), (_PAL_DECISION, _PAL_MIRROR), ("@@X@@", _PAL_DECISION)],
        ),
        (
            "not-computed",  # "the first half holds a copy of the second": causal attention can't
            "mirror",
            [
                (_PAL_MIRROR, '"site": "L0H0@1..10",'),
                ("return tokens[:, 1:11].flip(-1)", "return tokens[:, 11:21].flip(-1)"),
                (
                    "return (tokens[:, 11:21] == mirror).all(-1)",
                    "return (tokens[:, 1:11] == mirror).all(-1)",
                ),
            ],
        ),
        ("false-attention", "attention", [('"key": "21-p"', '"key": "p-1"')]),
    ],
    "four_digit_sum": [
        # the leading pair read by layer 1 at the answers instead of layer 0
        ("wrong-site", "pair0", [(_FDS[0], '"site": ["L1H2@9..13"],')]),
        (
            "roles-swapped",
            "pair0",
            [(_FDS[0], "@@X@@"), (_FDS[3], _FDS[0]), ("@@X@@", _FDS[3])],
        ),
        (
            "not-computed",  # a cross-pair sum a0 + b3 the model never forms
            "pair0",
            [("    return _pair(tokens, 0)\n", "    return tokens[:, 0] + tokens[:, 8]\n")],
        ),
        ("false-attention", "attention", [('"key": "p-1"', '"key": "p-5"')]),
    ],
    "sorted_list": [
        # the list positions hold the unsorted numbers; their heads carry no answer
        ("wrong-site", "successors", [(_SL_SUCC, '"site": ["L0H0@1..9", "L0H1@1..9"],')]),
        (
            "roles-swapped",
            "successors",
            [(_SL_FIRST, "@@X@@"), (_SL_SUCC, _SL_FIRST), ("@@X@@", _SL_SUCC)],
        ),
        (
            "not-computed",  # the heads copy the number itself, not the step up to the next one
            "successors",
            [
                (
                    "return above.min(-1).values  # [n, 9]",
                    "return above.min(-1).values - current[..., 0]",
                ),
                (
                    '"answer": {"from": ["first", "successors"]},',
                    '"answer": {"from": ["first", "successors", "tokens"]},',
                ),
                (
                    "def answer(first: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:\n"
                    "    return torch.cat([first, successors], -1)",
                    "def answer(first, successors, tokens):\n"
                    "    return torch.cat([first, (successors + tokens[:, 11:20]).clamp(0, 49)], -1)",
                ),
            ],
        ),
        (
            "false-attention",
            "attention",
            [
                (
                    _SL_ANSWER,
                    _SL_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "11..19", "key": "p-1"}],\n',
                )
            ],
        ),
    ],
    # "Two roles swapped" does not apply: letters -> shift is one chain on the only path from the
    # letters to the answer, so patching either carries the source's shift (writeup.md).
    "caesar_easy": [
        # the heads at half the positions: the other half still reads the base text's letters
        ("wrong-site", "letters", [(_CE_LETTERS, '"site": ["L0H0@0..11", "L0H1@0..11"],')]),
        (
            "not-computed",  # the MLP decrypts each position's letter, not one shift everywhere
            "shift",
            [
                ('"answer": {"from": ["shift"]},', '"answer": {"from": ["shift", "tokens"]},'),
                (
                    "    return out\n\n\ndef answer",
                    "    return (tokens - out) % 26  # the plaintext letter at each position\n\n\n"
                    "def answer",
                ),
                (
                    "def answer(shift: torch.Tensor) -> torch.Tensor:\n    return shift",
                    "def answer(shift, tokens):\n    return (tokens - shift) % 26",
                ),
            ],
        ),
        (
            "false-attention",
            "attention",
            [
                (
                    _CE_ANSWER,
                    _CE_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "0..23", "key": "p"}],\n',
                )
            ],
        ),
    ],
    # One variable, two roles in the vote: which letters (from layer 0) and how often each occurs
    # (from the tokens' own embeddings, which layer 1 compares them with). writeup.md.
    "first_unique": [
        # the layer-1 heads do not carry layer 0's letters: their patch moves the answer elsewhere
        ("wrong-site", "letters", [(_FU_LETTERS, '"site": ["L1H0", "L1H1", "L1H2"],')]),
        (
            "roles-swapped",
            "letters",
            [(_FU_ROLES, "chars, letters = letters.long(), tokens[:, 1:]")],
        ),
        (
            "not-computed",  # "layer 0 holds the counts too": the letters alone decide the vote
            "letters",
            [(_FU_ROLES, "chars, letters = letters.long(), letters.long()")],
        ),
        (
            "false-attention",  # the layer-0 heads avoid the query's own letter, itself included
            "attention",
            [
                (
                    _FU_ANSWER,
                    _FU_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "5..19", "key": "p"}],\n',
                )
            ],
        ),
    ],
    # One variable: "two roles swapped" does not apply. The reference makes no attention claim,
    # so a false one is measured against the default attention bar.
    "cumsum_sign": [
        # the head at the first half only: the second half's answers follow the base
        ("wrong-site", "running_mean", [('"site": "L0H0",', '"site": "L0H0@0..9",')]),
        (
            "not-computed",  # "the head carries the current value", not the prefix's mean
            "running_mean",
            [
                (
                    "    return values.cumsum(-1) / torch.arange(1, tokens.shape[1] + 1, "
                    "dtype=torch.float64)",
                    "    return values",
                ),
            ],
        ),
        (
            "false-attention",  # the head attends uniformly over the prefix, not to itself
            "attention",
            [
                (
                    _CS_ANSWER,
                    _CS_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "5..19", "key": "p"}],\n',
                )
            ],
        ),
    ],
}


# Claims right in part: a variable's site missing part of where the model holds it. Measured so
# that "holds" needs more than such a claim reaches (they should read "partly").
PARTIAL: dict[str, list[tuple[str, str, list[Edit]]]] = {
    "palindromes": [
        # README: L1H0 carries part of the decision too
        ("decision-in-one-head", "is_palindrome", [(_PAL_DECISION, '"site": "L1H1@END",')]),
    ],
    "four_digit_sum": [
        # the leading pair without its b-digit position, where layer 1 reads it
        (
            "pair-without-its-b-position",
            "pair0",
            [(_FDS[0], '"site": ["L0H0@9", "L0H2@9", "L0H0@10", "L0H1@10", "L0H2@10"],')],
        ),
    ],
    "first_unique": [
        # the letters in L0H0 alone, the head that weights the first ones most (writeup.md)
        ("letters-in-L0H0-only", "letters", [(_FU_LETTERS, '"site": ["L0H0"],')]),
    ],
}


def replace_once(source: str, old: str, new: str) -> str:
    """``source`` with ``old`` replaced by ``new``; ``old`` must occur exactly once, so an edit
    gone stale with its hypothesis fails loudly instead of testing the reference."""
    if source.count(old) != 1:
        raise ValueError(f"edit does not match exactly once: {old!r}")
    return source.replace(old, new)


def mutate(source: str, edits: list[Edit]) -> str:
    """Apply text edits in order, each with :func:`replace_once`."""
    for old, new in edits:
        source = replace_once(source, old, new)
    return source


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
