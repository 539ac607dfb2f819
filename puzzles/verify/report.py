"""Render a verdict for people: a short Markdown report (reads well in Slack) and a PNG plot."""

from __future__ import annotations

import io
from typing import Any

from puzzles.verify.verdict import CheckResult, Verdict


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"


def render_report(verdict: Verdict, *, log_tail: str = "", notes: list[str] | None = None) -> str:
    mark = "PASSED" if verdict.passed else "FAILED"
    icon = ":white_check_mark:" if verdict.passed else ":x:"
    lines = [f"{icon} **{verdict.puzzle or 'submission'}: {mark}**"]
    if verdict.error:
        lines += ["", f"**The submission could not be verified:** {verdict.error}"]
    for check in verdict.checks.values():
        lines += ["", _check_section(check)]
    static = verdict.static or {}
    if static.get("description_bytes") is not None:
        lines += [
            "",
            f"compactness: {static['description_bytes']:,} bytes compressed (description length "
            f"of the code as run); literal data {static.get('literal_bytes', 0):,} of "
            f"{static.get('max_literal_bytes', 0):,} bytes allowed",
        ]
    if verdict.seed_kind == "public":
        lines += [
            "",
            "_Self-check on the public held-out set: the server verifies on a secret set, so its "
            "scores can differ slightly._",
        ]
    for note in notes or []:
        lines += ["", f"_{note}_"]
    if not verdict.sandboxed:
        lines += ["", "_Ran WITHOUT the sandbox (--unsafe-no-sandbox)._"]
    if log_tail.strip():
        tail = log_tail.strip()[-1500:].replace("```", "'''")
        lines += ["", "Output of your code (last lines):", "```", tail, "```"]
    lines += [
        "",
        f"`{verdict.runtime_s:.1f} s on {verdict.device}, engine {verdict.engine_version}`",
    ]
    return "\n".join(lines)


def _check_section(check: CheckResult) -> str:
    mark = ":white_check_mark:" if check.passed else ":x:"
    head = f"{mark} **{check.name}**: {check.message}"
    d = check.details
    rows: list[str] = []
    if check.name == "replication" and d:
        rows.append(
            f"held-out {_pct(d.get('agreement_heldout'))}, edge cases "
            f"{_pct(d.get('agreement_edge_cases'))}, whole answers right "
            f"{_pct(d.get('exact_match_per_example'))} of {d.get('n_examples')} examples"
        )
        per_pos = d.get("per_position") or {}
        if len(per_pos) > 1:
            rows.append(
                "per position: "
                + ", ".join(f"{k} {_pct(v)}" for k, v in list(per_pos.items())[:24])
            )
    elif check.name == "circuit" and d and "faithfulness" in d:
        pe = d.get("per_example_faithfulness") or {}
        rows.append(
            f"{d.get('ablation')} ablation, metric {d.get('metric')}: full {_num(d.get('metric_full'))}, "
            f"circuit {_num(d.get('metric_circuit'))}, all ablated {_num(d.get('metric_empty'))}"
        )
        rows.append(
            f"per example: {pe.get('n_faithful', 'n/a')} of {pe.get('n_defined', 'n/a')} examples "
            f"faithful ({_pct(pe.get('share_at_threshold'))}; median {_num(pe.get('median'))}, "
            f"10th percentile {_num(pe.get('p10'))}); circuit's answer = model's on "
            f"{d.get('n_examples_circuit_agrees', 'n/a')} of {d.get('n_examples')} "
            f"({_pct(d.get('circuit_agrees_with_model'))})"
        )
        necessity = d.get("necessity") or {}
        if necessity:
            rows.append(
                "necessity (faithfulness lost without it): "
                + ", ".join(f"`{k}` {_num(v)}" for k, v in list(necessity.items())[:40])
            )
    return "\n".join([head] + [f"• {row}" for row in rows])


def render_plot(verdict: Verdict) -> bytes | None:
    """Agreement per answer position and the necessity of each circuit component, as a PNG."""
    replication = verdict.checks.get("replication")
    circuit = verdict.checks.get("circuit")
    per_pos = (replication.details.get("per_position") if replication else None) or {}
    if len(per_pos) < 2:
        per_pos = {}  # one answer position: the overall agreement in the report says it all
    necessity = (circuit.details.get("necessity") if circuit else None) or {}
    if not per_pos and not necessity:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    panels = [p for p in (per_pos, necessity) if p]
    fig = Figure(figsize=(4.5 * len(panels), 3.2), dpi=80)
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    ax_iter = iter(axes)
    if per_pos:
        ax = next(ax_iter)
        names = list(per_pos)
        values = [0.0 if v is None else float(v) for v in per_pos.values()]
        ax.bar(range(len(names)), values, color="#4c72b0")
        step = max(1, len(names) // 10)  # few tick labels: text layout is most of a plot's cost
        ticks = list(range(0, len(names), step))
        ax.set_xticks(ticks, [names[i].removeprefix("pos ") for i in ticks], fontsize=7)
        ax.set_ylim(0, 1.02)
        threshold = replication.threshold if replication else None
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.set_title("predict vs model: agreement per answer position", fontsize=9)
        ax.set_xlabel("answer position", fontsize=8)
    if necessity:
        ax = next(ax_iter)
        names = list(necessity)
        values = [0.0 if v is None else float(v) for v in necessity.values()]
        colors = [
            "#55a868" if v > circuit.details.get("necessity_threshold", 0.02) else "#c44e52"
            for v in values
        ]
        ax.bar(range(len(names)), values, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0, fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        f = circuit.details.get("faithfulness")
        title = "ablation effect per circuit component"
        if f is not None:
            title += f" (faithfulness {f:.2f})"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("faithfulness lost", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.88, wspace=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
