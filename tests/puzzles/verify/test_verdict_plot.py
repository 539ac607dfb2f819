"""The verdict plot: replication and circuit together, labelled, legible at Slack's preview size,
for a pass and for a failure (no empty axes, no label outside the image)."""

from __future__ import annotations

import io

import pytest

from puzzles.verify import CheckResult, Verdict
from puzzles.verify.report import build_plot, render_plot


def _passing() -> Verdict:
    replication = CheckResult(
        "replication",
        True,
        0.996,
        0.95,
        "agreement 99.6%",
        {
            "agreement_heldout": 0.996,
            "agreement_edge_cases": 0.917,
            "per_position": {f"pos {i}": 0.99 - 0.01 * i for i in range(6)},
        },
    )
    circuit = CheckResult(
        "circuit",
        True,
        0.86,
        0.7,
        "faithfulness 0.86",
        {
            "faithfulness": 0.86,
            "necessity_threshold": 0.02,
            "necessity": {"L0H0": 0.41, "L0H1": 0.12, "L1H0": 0.55, "L1H1@-1": 0.01},
        },
    )
    return Verdict(True, {"replication": replication, "circuit": circuit}, puzzle="palindromes")


def _failing() -> Verdict:
    replication = CheckResult(
        "replication",
        False,
        0.0,
        0.95,
        "agreement 0%",
        {
            "agreement_heldout": 0.0,
            "agreement_edge_cases": 0.0,
            "per_position": {f"pos {i}": 0.0 for i in range(12)},
        },
    )
    circuit = CheckResult(
        "circuit",
        False,
        -0.31,
        0.7,
        "faithfulness -0.31",
        {
            "faithfulness": -0.31,
            "necessity": {"L0MLP": -0.05, "L1H2": None, "embed_a_very_long_component_name": 0.0},
        },
    )
    return Verdict(False, {"replication": replication, "circuit": circuit}, puzzle="palindromes")


@pytest.mark.parametrize("verdict", [_passing(), _failing()], ids=["pass", "fail"])
def test_plot_is_labelled_and_nothing_is_clipped(verdict):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = build_plot(verdict)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    assert width == 720  # Slack's preview (~360 px) shows it at half size: 8 pt text stays legible
    axes = fig.get_axes()
    assert len(axes) == 3  # checks, replication per position, circuit components
    assert axes[0].get_yticklabels()[0].get_text().startswith("replication")
    assert any(t.get_text().startswith("circuit") for t in axes[0].get_yticklabels())
    for ax in [*axes, fig._suptitle]:
        box = ax.get_tightbbox(renderer) if ax in axes else ax.get_window_extent(renderer)
        assert box.x0 >= -0.5 and box.y0 >= -0.5, (ax, box)
        assert box.x1 <= width + 0.5 and box.y1 <= height + 0.5, (ax, box)
    for ax in axes:
        assert ax.get_xlabel() and ax.get_title(loc="left"), ax
        assert ax.texts, "every panel writes its values, so a zero still reads"


def test_plot_png_and_no_plot_without_scores():
    png = render_plot(_failing())
    assert png is not None and png.startswith(b"\x89PNG")
    from matplotlib import image

    assert image.imread(io.BytesIO(png)).shape[1] == 720
    assert render_plot(Verdict(False, {}, error="Syntax error at line 1")) is None
