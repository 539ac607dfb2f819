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
    memory = f", peak memory {verdict.memory_peak_mb:.0f} MB" if verdict.memory_peak_mb else ""
    lines += [
        "",
        f"`{verdict.runtime_s:.1f} s on {verdict.device}{memory}, engine {verdict.engine_version}`",
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


PASS_COLOR, FAIL_COLOR, NEUTRAL_COLOR = "#2e8b57", "#c0392b", "#4c72b0"
PLOT_WIDTH_IN, PLOT_DPI = 4.0, 180  # 720 px: sharp on a 2x screen, legible at Slack's ~360 px


def _value_label(ax: Any, x: float, y: float, text: str, *, horizontal: bool) -> None:
    if horizontal and x > 0.3:  # inside the bar's end: clear of a pass-mark tick beyond it
        ax.annotate(
            text,
            (x, y),
            xytext=(-3, 0),
            textcoords="offset points",
            va="center",
            ha="right",
            fontsize=8,
            color="white",
            fontweight="bold",
        )
    elif horizontal:
        ax.annotate(
            text, (x, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
        )
    else:
        ax.annotate(
            text, (x, y), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7
        )


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _summary_rows(verdict: Verdict) -> list[tuple[str, float, float | None, bool | None]]:
    """(label, value, threshold, passed) for each check's scores, replication first.

    A check's headline score carries its pass mark and colour; the parts it is made of (held-out,
    edge cases) are shown beside it in a neutral colour, since the mark applies to the whole.
    """
    rows: list[tuple[str, float, float | None, bool | None]] = []
    replication = verdict.checks.get("replication")
    if replication is not None:
        d = replication.details
        if replication.score is not None:
            rows.append(
                ("replication", float(replication.score), replication.threshold, replication.passed)
            )
        for key, label in (
            ("agreement_heldout", "held-out"),
            ("agreement_edge_cases", "edge cases"),
        ):
            if d.get(key) is not None:
                rows.append((f"replication\n{label}", float(d[key]), None, None))
    circuit = verdict.checks.get("circuit")
    if circuit is not None and circuit.score is not None:
        rows.append(
            ("circuit\nfaithfulness", float(circuit.score), circuit.threshold, circuit.passed)
        )
    for name, check in verdict.checks.items():
        if name not in ("replication", "circuit") and check.score is not None:
            rows.append((name, float(check.score), check.threshold, check.passed))
    return rows


def render_plot(verdict: Verdict) -> bytes | None:
    """The verdict at a glance as a PNG (see ``build_plot``); None when there is nothing to plot."""
    fig = build_plot(verdict)
    if fig is None:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_plot(verdict: Verdict) -> Any:
    """The verdict at a glance, a matplotlib Figure sized for Slack's preview (~360 px wide).

    Stacked panels: every check's score against its threshold (replication and circuit together,
    pass/fail coloured, values written on the bars so a zero still reads), then agreement per
    answer position and the ablation effect of each circuit component when there are several.
    None when no check produced a score (the report then says why in words).
    """
    rows = _summary_rows(verdict)
    replication = verdict.checks.get("replication")
    circuit = verdict.checks.get("circuit")
    per_pos = (replication.details.get("per_position") if replication else None) or {}
    if len(per_pos) < 2:
        per_pos = {}  # one answer position: the summary panel shows it
    necessity = (circuit.details.get("necessity") if circuit else None) or {}
    if not rows and not per_pos and not necessity:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    heights = []
    if rows:
        heights.append(0.45 * len(rows) + 0.6)
    if per_pos:
        heights.append(2.0)
    if necessity:
        heights.append(0.28 * len(necessity) + 0.7)
    fig = Figure(figsize=(PLOT_WIDTH_IN, sum(heights) + 0.5), dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    ax_iter = iter(axes)
    verdict_word = "passed" if verdict.passed else "did not pass"
    fig.suptitle(
        f"{verdict.puzzle or 'submission'}: {verdict_word}", fontsize=10, fontweight="bold"
    )
    if rows:
        _plot_checks(next(ax_iter), rows)
    if per_pos:
        _plot_positions(next(ax_iter), per_pos, replication.threshold if replication else None)
    if necessity:
        cut = circuit.details.get("necessity_threshold", 0.02) if circuit else 0.02
        _plot_necessity(next(ax_iter), necessity, cut)
    return fig


def _plot_checks(ax: Any, rows: list[tuple[str, float, float | None, bool | None]]) -> None:
    """Every check's score against its pass mark, pass/fail coloured."""
    labels = [r[0] for r in rows]
    values = [r[1] for r in rows]
    ys = list(range(len(rows)))[::-1]
    colors = [NEUTRAL_COLOR if r[3] is None else PASS_COLOR if r[3] else FAIL_COLOR for r in rows]
    ax.barh(ys, values, color=colors, height=0.6)
    for y, (_, value, threshold, _) in zip(ys, rows, strict=True):
        _value_label(ax, max(value, 0.0), y, f"{value:.2f}", horizontal=True)
        if threshold is not None:
            ax.plot([threshold, threshold], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlim(min(0.0, *values), max(1.15, max(values) + 0.15))
    ax.set_xlabel("score (black tick: pass mark)", fontsize=8)
    ax.set_title("checks", fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=7)


def _plot_positions(ax: Any, per_pos: dict[str, Any], threshold: float | None) -> None:
    """Replication's agreement at each answer position."""
    names = [n.removeprefix("pos ") for n in per_pos]
    values = [0.0 if v is None else float(v) for v in per_pos.values()]
    colors = [NEUTRAL_COLOR if threshold is None or v >= threshold else FAIL_COLOR for v in values]
    ax.bar(range(len(names)), values, color=colors)
    step = max(1, len(names) // 8)  # a few tick labels: legible, and text layout is slow
    ticks = list(range(0, len(names), step))
    ax.set_xticks(ticks, [names[i] for i in ticks], fontsize=7)
    ax.set_ylim(0, 1.1)
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1)
    if len(names) <= 8:
        for x, v in enumerate(values):
            _value_label(ax, x, v, f"{100 * v:.0f}%", horizontal=False)
    if not any(values):  # no bars at all: say so rather than show an empty axis
        ax.text(
            0.5,
            0.5,
            "0% at every position",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color=FAIL_COLOR,
        )
    ax.set_title("replication per answer position", fontsize=9, loc="left")
    ax.set_xlabel("answer position", fontsize=8)
    ax.set_ylabel("agreement", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def _plot_necessity(ax: Any, necessity: dict[str, Any], cut: float) -> None:
    """The ablation effect of each circuit component, against the necessity threshold."""
    names = list(necessity)
    values = [0.0 if v is None else float(v) for v in necessity.values()]
    ys = list(range(len(names)))[::-1]
    colors = [PASS_COLOR if v > cut else FAIL_COLOR for v in values]
    ax.barh(ys, values, color=colors, height=0.6)
    for y, v in zip(ys, values, strict=True):
        _value_label(ax, max(v, 0.0), y, f"{v:.2f}", horizontal=True)
    ax.set_yticks(ys, [_short(n) for n in names], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.axvline(cut, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(min(0.0, *values) - 0.05, max(1.0, max(values) + 0.2))
    ax.set_title("circuit: necessity per component", fontsize=9, loc="left")
    ax.set_xlabel("faithfulness lost without it (dashed: needed)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
