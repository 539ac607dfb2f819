"""The causal check of a v2 hypothesis: interchange intervention accuracy (IIA) per variable and
for all variables together, causal-scrubbing resampling, attention-claim agreement.

Flow: :func:`build_job` draws candidate (base, source) pairs from the pool on the (secret) seed; the
sandbox runs the solver's functions on the pool and on every candidate pair (counterfactual
answers); :func:`causal_check` keeps pairs where the intervened variables really differ, balanced
between pairs where the hypothesis says the answer changes and pairs where it says it does not (so
a site that does nothing cannot score by leaving answers alone), patches the model on them and
compares. Balanced IIA is the mean of the two strata's accuracies.

Puzzles that answer at several positions are scored per answer position, as the causal-abstraction
literature does for sequence outputs: a (pair, position) cell agrees when the patched model's answer
there equals the counterfactual one, and the strata are cells where the counterfactual answer
differs from the hypothesis' base answer ("answer changes") or not ("answer stays"). Requiring the
whole sequence to match would cap IIA at the model's sequence accuracy whatever the hypothesis.
With one answer position (palindromes) cells are pairs, so the numbers are the whole-pair ones.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch

from puzzles.verify.causal import InterventionEngine, Patch
from puzzles.verify.hypothesis import Hypothesis
from puzzles.verify.verdict import CheckResult

DEFAULTS = {
    "causal_candidates": 2048,  # candidate pairs per intervention sent to the sandbox
    "causal_pairs": 512,  # pairs per intervention actually patched (half per stratum at most)
    "causal_min_changed": 16,  # fewer answer-changing pairs than this: the variable is untestable
    "causal_holds": 0.85,  # balanced IIA for "holds"
    "causal_partly": 0.6,  # balanced IIA for "partly"
    "causal_scrub_holds": 0.8,  # share of the site's effect kept under causal scrubbing
    "attention_holds": 0.75,  # share of (input, query) whose top key is the claimed one
    "attention_partly": 0.5,
}

HOLDS, PARTLY, FAILS, UNTESTABLE = "holds", "partly", "does not hold", "untestable"


def settings(config: dict[str, Any]) -> dict[str, float]:
    return {key: type(value)(config.get(key, value)) for key, value in DEFAULTS.items()}


@dataclass
class CausalJob:
    """What the sandbox gets (wiring + pool + candidate pairs) and how its answer is checked."""

    hypothesis: Hypothesis
    pool: torch.Tensor
    interventions: list[tuple[str, ...]]
    pairs: list[torch.Tensor]
    k: int
    n_classes: int
    spec: dict[str, Any] = field(init=False)
    inputs: bytes = field(init=False)

    def __post_init__(self) -> None:
        from safetensors.torch import save

        self.spec = {
            **self.hypothesis.to_job(),
            "interventions": [list(names) for names in self.interventions],
            "k": self.k,
            "n_classes": self.n_classes,
        }
        tensors = {"pool": self.pool.contiguous().cpu()}
        tensors.update({f"pairs.{i}": p.contiguous() for i, p in enumerate(self.pairs)})
        self.inputs = save(tensors)

    @property
    def max_bytes(self) -> int:
        n = self.pool.shape[0]
        answers = (n + sum(p.shape[0] for p in self.pairs)) * self.k * 8
        return answers + 8 * 4_000_000 + (1 << 20)

    def check(self, tensors: dict[str, torch.Tensor]) -> str | None:
        """None when the sandbox's tensors have exactly the expected names, shapes and ranges."""
        n = self.pool.shape[0]
        want = {"answer"} | {f"value.{v.name}" for v in self.hypothesis.variables}
        want |= {f"cf.{i}" for i in range(len(self.pairs))}
        if set(tensors) != want:
            return "the hypothesis' output is incomplete or has unexpected entries"
        for name, tensor in tensors.items():
            rows = self.pairs[int(name[3:])].shape[0] if name.startswith("cf.") else n
            if tensor.dim() != 2 or tensor.shape[0] != rows:
                return f"the hypothesis' output {name!r} has the wrong shape"
            if name.startswith("value."):
                if tensor.dtype != torch.float64 or not bool(torch.isfinite(tensor).all()):
                    return f"variable {name[6:]!r} has values that are not finite numbers"
            elif (
                tensor.dtype != torch.int64
                or tensor.shape[1] != self.k
                or (rows and (int(tensor.min()) < 0 or int(tensor.max()) >= self.n_classes))
            ):
                return f"the hypothesis' answers {name!r} are not class ids"
        return None


def interventions_for(hypothesis: Hypothesis) -> list[tuple[str, ...]]:
    """Each variable alone, then (with two or more) all variables together."""
    names: list[tuple[str, ...]] = [(v.name,) for v in hypothesis.variables]
    if len(names) > 1:
        names.append(tuple(v.name for v in hypothesis.variables))
    return names


def build_job(
    hypothesis: Hypothesis, pool: torch.Tensor, *, seed: int, k: int, n_classes: int, config
) -> CausalJob:
    """Candidate pairs (base != source) drawn on ``seed``; filtered after the sandbox ran."""
    cfg = settings(config)
    n = pool.shape[0]
    generator = torch.Generator().manual_seed(int(seed) ^ 0x5EED_CA05)
    interventions = interventions_for(hypothesis)
    pairs = []
    for _ in interventions:
        base = torch.randint(n, (int(cfg["causal_candidates"]),), generator=generator)
        shift = torch.randint(1, max(n, 2), base.shape, generator=generator)
        pairs.append(torch.stack([base, (base + shift) % n], dim=1))
    return CausalJob(hypothesis, pool, interventions, pairs, k, n_classes)


def _status(value: float | None, holds: float, partly: float) -> str:
    if value is None:
        return UNTESTABLE
    return HOLDS if value >= holds else PARTLY if value >= partly else FAILS


def _pick(mask: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    idx = mask.nonzero().flatten()
    return idx[torch.randperm(idx.numel(), generator=generator)[:count]]


def _share(agree: torch.Tensor, cells: torch.Tensor) -> float | None:
    """Share of the selected (pair, answer position) cells where the model agrees; None if none."""
    return float(agree[cells].float().mean()) if bool(cells.any()) else None


def _interchange(
    inter: InterventionEngine,
    job: CausalJob,
    index: int,
    tensors: dict[str, torch.Tensor],
    cfg: dict[str, float],
    generator: torch.Generator,
) -> dict[str, Any]:
    names = job.interventions[index]
    pairs = job.pairs[index]
    base, source = pairs[:, 0], pairs[:, 1]
    differs = [
        (tensors[f"value.{n}"][base] != tensors[f"value.{n}"][source]).any(-1) for n in names
    ]
    differ = torch.stack(differs).all(0)
    counterfactual = tensors[f"cf.{index}"]
    changes = (counterfactual != tensors["answer"][base]).any(-1)
    half = int(cfg["causal_pairs"]) // 2
    chosen_change = _pick(differ & changes, half, generator)
    chosen_same = _pick(differ & ~changes, half, generator)
    chosen = torch.cat([chosen_change, chosen_same])
    variables = {v.name: v for v in job.hypothesis.variables}
    sources = source[chosen]
    patches = [Patch(site, sources) for n in names for site in variables[n].sites]
    logits = inter.logits(base[chosen], patches)
    agree = logits.argmax(-1).cpu() == counterfactual[chosen]  # [pairs, answer positions]
    cell_changes = counterfactual[chosen] != tensors["answer"][base[chosen]]
    iia_change = _share(agree, cell_changes)
    iia_same = _share(agree, ~cell_changes)
    n_change = chosen_change.numel()
    parts = [x for x in (iia_change, iia_same) if x is not None]
    balanced = sum(parts) / len(parts) if parts else None
    testable = n_change >= int(cfg["causal_min_changed"])
    return {
        "iia": balanced if testable else None,
        "iia_where_answer_changes": iia_change,
        "iia_where_answer_stays": iia_same,
        "pairs": int(chosen.numel()),
        "pairs_answer_changes": n_change,
        "candidates_differing": int(differ.sum()),
    }


def _scrub(
    inter: InterventionEngine,
    job: CausalJob,
    name: str,
    tensors: dict[str, torch.Tensor],
    cfg: dict[str, float],
    generator: torch.Generator,
) -> dict[str, Any]:
    """Resample the variable's sites from an input with the same value (vs from any input):
    the share of the sites' effect on the model's answers (per answer position) that the variable
    explains."""
    values = tensors[f"value.{name}"]
    n = values.shape[0]
    _, group = torch.unique(values, dim=0, return_inverse=True)
    bases, partners = [], []
    order = torch.randperm(n, generator=generator)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(i)
    for b in order.tolist():
        same = members[int(group[b])]
        if len(same) > 1:
            pick = same[int(torch.randint(len(same) - 1, (1,), generator=generator))]
            partners.append(pick if pick != b else same[-1])
            bases.append(b)
        if len(bases) >= int(cfg["causal_pairs"]):
            break
    if len(bases) < int(cfg["causal_min_changed"]):
        return {"recovered": None, "scrub_note": "too few inputs share a value of this variable"}
    base = torch.tensor(bases)
    shift = torch.randint(1, n, base.shape, generator=generator)
    random_source = (base + shift) % n
    sites = next(v for v in job.hypothesis.variables if v.name == name).sites
    clean = inter.engine.clean_logits.argmax(-1).cpu()[base]

    def accuracy(sources: torch.Tensor) -> float:
        logits = inter.logits(base, [Patch(site, sources) for site in sites])
        return float((logits.argmax(-1).cpu() == clean).float().mean())  # per answer position

    scrubbed, resampled = accuracy(torch.tensor(partners)), accuracy(random_source)
    effect = 1.0 - resampled
    out: dict[str, Any] = {
        "scrub_accuracy": scrubbed,
        "random_resample_accuracy": resampled,
    }
    if effect < 0.02:
        out["recovered"] = None
        out["scrub_note"] = "resampling the site at random barely changes the model's answers"
    else:
        out["recovered"] = (scrubbed - resampled) / effect
    return out


def causal_check(
    inter: InterventionEngine,
    job: CausalJob,
    tensors: dict[str, torch.Tensor],
    *,
    config: dict[str, Any],
    seed: int,
) -> CheckResult:
    """Per claim "holds / partly / does not hold / untestable" with its numbers."""
    cfg = settings(config)
    generator = torch.Generator().manual_seed(int(seed) ^ 0xCA05A1)
    hyp = job.hypothesis
    variables: dict[str, Any] = {}
    for index, names in enumerate(job.interventions[: len(hyp.variables)]):
        (name,) = names
        var = next(v for v in hyp.variables if v.name == name)
        row = _interchange(inter, job, index, tensors, cfg, generator)
        row.update(_scrub(inter, job, name, tensors, cfg, generator))
        row["site"] = " + ".join(site.name for site in var.sites)
        status = _status(row["iia"], cfg["causal_holds"], cfg["causal_partly"])
        recovered = row.get("recovered")
        if status == HOLDS and recovered is not None and recovered < cfg["causal_scrub_holds"]:
            status = PARTLY
        row["status"] = status
        variables[name] = row
    joint = None
    if len(job.interventions) > len(hyp.variables):
        joint = _interchange(inter, job, len(hyp.variables), tensors, cfg, generator)
        joint["status"] = _status(joint["iia"], cfg["causal_holds"], cfg["causal_partly"])
    attention = []
    for claim in hyp.attention:
        row = {"claim": claim.text, **inter.attention_agreement(claim)}
        row["status"] = _status(row["top_share"], cfg["attention_holds"], cfg["attention_partly"])
        attention.append(row)
    statuses = [r["status"] for r in variables.values()] + [r["status"] for r in attention]
    if joint:
        statuses.append(joint["status"])
    passed = all(s == HOLDS for s in statuses)
    score = (joint or next(iter(variables.values())))["iia"]
    details = {
        "iia": {name: row["iia"] for name, row in variables.items()},
        "iia_all": score,
        "variables": variables,
        "all_variables": joint,
        "attention": attention,
        "thresholds": {"holds": cfg["causal_holds"], "partly": cfg["causal_partly"]},
    }
    return CheckResult(
        name="causal",
        passed=passed,
        score=score,
        threshold=cfg["causal_holds"],
        message=_message(passed, variables, joint, attention),
        details=details,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _why(row: dict[str, Any]) -> str:
    """Which kind of input the claim fails on, in words."""
    if row["status"] == UNTESTABLE:
        return "changing it never changes your answer on these inputs, so it cannot be tested"
    change, stay = row["iia_where_answer_changes"], row["iia_where_answer_stays"]
    if row["status"] == HOLDS:
        return ""
    if change is not None and (stay is None or change < stay):
        return "fails where your hypothesis says the answer should change (the model's does not follow)"
    if stay is not None:
        return "fails where your hypothesis says the answer stays (patching the model changes it)"
    return ""


def _message(passed, variables, joint, attention) -> str:
    held = sum(r["status"] == HOLDS for r in variables.values())
    head = (
        "every claim of the hypothesis holds under interchange interventions"
        if passed
        else f"{held} of {len(variables)} variables hold; see the table for the claims that do not"
    )
    lines = [
        head,
        "",
        "| claim | site | IIA | IIA (answer changes / stays) | scrubbing recovered | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in variables.items():
        why = _why(r)
        lines.append(
            f"| `{name}` | `{r['site']}` | {_fmt(r['iia'])} | "
            f"{_fmt(r['iia_where_answer_changes'])} / {_fmt(r['iia_where_answer_stays'])} | "
            f"{_fmt(r.get('recovered'))} | {r['status']}{': ' + why if why else ''} |"
        )
    if joint:
        lines.append(
            f"| all variables together | | {_fmt(joint['iia'])} | "
            f"{_fmt(joint['iia_where_answer_changes'])} / {_fmt(joint['iia_where_answer_stays'])}"
            f" | | {joint['status']} |"
        )
    for r in attention:
        lines.append(
            f"| {r['claim']} | | top key {_fmt(r['top_share'])}, weight {_fmt(r['mean_weight'])} "
            f"| worst query {r['worst_query']}: {_fmt(r['worst_query_share'])} | | {r['status']} |"
        )
    return "\n".join(lines)


def render_causal_plot(check: CheckResult, base_png: bytes | None = None) -> bytes:
    """Per-variable IIA bars (threshold line), beside the verdict's other plot when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = check.details
    names = list(d["variables"]) + (["(all)"] if d.get("all_variables") else [])
    rows = list(d["variables"].values()) + ([d["all_variables"]] if d.get("all_variables") else [])
    values = [r["iia"] or 0.0 for r in rows]
    colors = {HOLDS: "tab:green", PARTLY: "tab:orange", FAILS: "tab:red", UNTESTABLE: "tab:gray"}
    if base_png:
        fig, (left, ax) = plt.subplots(1, 2, figsize=(11, 3.6), width_ratios=[1.4, 1])
        left.imshow(plt.imread(io.BytesIO(base_png)))
        left.axis("off")
    else:
        fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.bar(names, values, color=[colors[r["status"]] for r in rows])
    ax.axhline(d["thresholds"]["holds"], color="black", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("balanced IIA")
    ax.set_title("interchange interventions per variable")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
